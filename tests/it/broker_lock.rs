//! One broker at a time owns a data directory: a second open in this
//! process fails with `Error::Locked` until the first closes.

use crate::common;
use embedlog::{Broker, Error};

#[test]
fn second_open_in_this_process_is_refused() {
    let dir = common::tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    match Broker::open(dir.path()) {
        Err(e @ Error::Locked { .. }) => assert!(e.to_string().contains("locked"), "{e}"),
        other => panic!("{other:?}"),
    }
    broker.close().unwrap();
    drop(broker);
    Broker::open(dir.path()).unwrap();
}
