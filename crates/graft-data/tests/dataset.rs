//! The three dataset forms, their splits, and the errors that name what is wrong.

use std::path::{Path, PathBuf};

use graft_data::{DataError, Selection, SplitOptions, SplitSource, open_dataset};

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel)
}

fn touch(path: &Path) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, b"x").expect("write");
}

#[test]
fn train_val_folders_give_hymenoptera_sorted_classes_and_counts() {
    let ds = open_dataset(&shared("hymenoptera"), SplitOptions::default()).expect("open");
    assert_eq!(ds.classes, vec!["ants", "bees"]);
    // torchvision counts 244: it ignores the placeholder GIF, which graft reads (and training
    // will report as what it is). 245 files with image extensions.
    assert_eq!((ds.train.len(), ds.val.len()), (245, 153));
    assert_eq!(
        ds.split,
        SplitSource::Folders {
            val_dir: "val".into()
        }
    );
    assert!(
        ds.train
            .iter()
            .any(|s| s.path.ends_with("ants/ant photos.jpg") && s.class == 0)
    );
}

#[test]
fn split_csv_gives_caltech_its_train_and_test_lists() {
    let ds = open_dataset(&shared("caltech101-20"), SplitOptions::default()).expect("open");
    assert_eq!(ds.classes.len(), 20);
    assert_eq!(ds.classes[0], "bonsai");
    assert_eq!((ds.train.len(), ds.val.len()), (1249, 626));
    assert_eq!(ds.val_name, "test");
}

#[test]
fn plain_image_folder_gets_a_seeded_stratified_split() {
    let dir = tempfile::tempdir().expect("tmp");
    for c in ["cat", "dog"] {
        for i in 0..10 {
            touch(&dir.path().join(c).join(format!("{i}.jpg")));
        }
    }
    let opts = SplitOptions {
        val_fraction: 0.2,
        seed: 7,
    };
    let a = open_dataset(dir.path(), opts).expect("open");
    let b = open_dataset(dir.path(), opts).expect("open");
    assert_eq!(a, b, "same seed, same split");
    assert_eq!((a.train.len(), a.val.len()), (16, 4));
    assert_eq!(
        a.val.iter().filter(|s| s.class == 0).count(),
        2,
        "stratified"
    );
    let c = open_dataset(
        dir.path(),
        SplitOptions {
            val_fraction: 0.2,
            seed: 8,
        },
    )
    .expect("open");
    assert_ne!(a.val, c.val, "another seed, another split");
}

#[test]
fn list_file_with_split_column_is_taken_as_written() {
    let dir = tempfile::tempdir().expect("tmp");
    let list = dir.path().join("data.csv");
    std::fs::write(
        &list,
        "path,label,split\na.jpg,zebra,train\nb.jpg,ant,train\nc.jpg,zebra,val\nd.jpg,ant,test\n",
    )
    .expect("write");
    let ds = open_dataset(&list, SplitOptions::default()).expect("open");
    assert_eq!(ds.classes, vec!["ant", "zebra"]);
    assert_eq!(ds.train.len(), 2);
    // Three splits: decisions on val, the figure on test.
    assert_eq!(ds.select[0].path, dir.path().join("c.jpg"));
    assert_eq!(ds.select[0].class, 1);
    assert_eq!(ds.selection, Selection::Given);
    assert_eq!(
        (ds.val[0].path.clone(), ds.val_name.as_str()),
        (dir.path().join("d.jpg"), "test")
    );
}

#[test]
fn train_val_test_folders_select_on_val_and_report_on_test() {
    let dir = tempfile::tempdir().expect("tmp");
    for split in ["train", "val", "test"] {
        for c in ["cat", "dog"] {
            touch(&dir.path().join(split).join(c).join(format!("{split}.jpg")));
        }
    }
    let ds = open_dataset(dir.path(), SplitOptions::default()).expect("open");
    assert_eq!(ds.val_name, "test");
    assert!(ds.val.iter().all(|s| s.path.ends_with("test.jpg")));
    assert!(ds.select.iter().all(|s| s.path.ends_with("val.jpg")));
    assert_eq!((ds.train.len(), ds.select.len(), ds.val.len()), (2, 2, 2));
    assert_eq!(ds.select_name(), "val");
}

#[test]
fn single_class_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tmp");
    touch(&dir.path().join("only/1.jpg"));
    touch(&dir.path().join("only/2.jpg"));
    let e = open_dataset(dir.path(), SplitOptions::default())
        .expect_err("one class")
        .to_string();
    assert!(e.contains("at least 2") && e.contains("only"), "{e}");
}

#[test]
fn empty_class_is_named() {
    let dir = tempfile::tempdir().expect("tmp");
    touch(&dir.path().join("a/1.jpg"));
    touch(&dir.path().join("a/2.jpg"));
    std::fs::create_dir_all(dir.path().join("b")).expect("mkdir");
    let e = open_dataset(dir.path(), SplitOptions::default())
        .expect_err("empty class")
        .to_string();
    assert!(e.contains("\"b\" has no images"), "{e}");
}

#[test]
fn val_class_missing_from_train_is_named() {
    let dir = tempfile::tempdir().expect("tmp");
    for p in [
        "train/a/1.jpg",
        "train/b/1.jpg",
        "val/a/2.jpg",
        "val/c/3.jpg",
    ] {
        touch(&dir.path().join(p));
    }
    let e = open_dataset(dir.path(), SplitOptions::default())
        .expect_err("stray class")
        .to_string();
    assert!(e.contains("\"c\" is in val/ but not in train/"), "{e}");
}

#[test]
fn split_file_naming_missing_files_lists_them() {
    let dir = tempfile::tempdir().expect("tmp");
    touch(&dir.path().join("a/1.jpg"));
    touch(&dir.path().join("b/1.jpg"));
    std::fs::write(
        dir.path().join("split.csv"),
        "path,split\na/1.jpg,train\nb/1.jpg,test\na/gone.jpg,train\n",
    )
    .expect("write");
    let e = open_dataset(dir.path(), SplitOptions::default())
        .expect_err("missing")
        .to_string();
    assert!(
        e.contains("a/gone.jpg") && e.contains("do not exist"),
        "{e}"
    );
}

#[test]
fn dataset_too_small_to_split_says_so() {
    let dir = tempfile::tempdir().expect("tmp");
    touch(&dir.path().join("a/1.jpg"));
    touch(&dir.path().join("b/1.jpg"));
    let e = open_dataset(dir.path(), SplitOptions::default()).expect_err("too small");
    assert!(matches!(e, DataError::Dataset { .. }));
    assert!(e.to_string().contains("both splits need images"), "{e}");
}
