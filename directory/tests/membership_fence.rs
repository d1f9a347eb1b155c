//! The membership fence: one change per epoch in the whole cluster, the
//! next only after the last returned.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use directory::{testing, MembershipFence};

fn fence(epoch: u64, names: &[&str]) -> MembershipFence {
    MembershipFence {
        epoch,
        members: names
            .iter()
            .map(|n| ((*n).to_owned(), format!("{n}:1")))
            .collect(),
        committed: false,
    }
}

#[tokio::test]
async fn one_change_per_epoch_and_only_after_the_last_returned() {
    let database = testing::fresh_database()
        .await
        .expect("private postgres (apt-get install postgresql)");
    let (_owner, directory) = database.open(2).await.unwrap();
    assert_eq!(directory.membership_fence().await.unwrap(), None);
    assert!(directory
        .take_membership_epoch(&fence(1, &["a", "b"]))
        .await
        .unwrap());
    assert!(
        !directory
            .take_membership_epoch(&fence(1, &["a", "c"]))
            .await
            .unwrap(),
        "epoch 1 is taken"
    );
    assert!(
        !directory
            .take_membership_epoch(&fence(2, &["a"]))
            .await
            .unwrap(),
        "epoch 1 has not returned"
    );
    directory.commit_membership_epoch(1).await.unwrap();
    let now = directory.membership_fence().await.unwrap().unwrap();
    assert_eq!((now.epoch, now.committed), (1, true));
    assert_eq!(now.members, fence(1, &["a", "b"]).members);
    assert!(directory
        .take_membership_epoch(&fence(2, &["a"]))
        .await
        .unwrap());
    assert!(!directory
        .take_membership_epoch(&fence(2, &["b"]))
        .await
        .unwrap());
}
