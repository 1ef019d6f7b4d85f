//! The release image, checked as the pods run it but without a cluster: the archive that
//! `tests/image/build` exports (scripts/test runs it first) is loaded into a buildah storage of
//! this test's own, its configuration is read, and its binary is run by runc — the runtime the
//! kubelet uses — as user 65532 on a read-only root filesystem.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

/// The non-root user the image runs as (the chart's securityContext uses the same).
const RUNTIME_USER: u32 = 65532;

/// Where the image keeps its state (the SQLite identity store); a volume in the pods.
const STATE_DIR: &str = "var/lib/sso-operator";

/// An upper bound on the image's uncompressed size, so that a build tool or a toolchain that
/// slips into the runtime stage is noticed.
const SIZE_BUDGET_BYTES: u64 = 200 * 1024 * 1024;

/// The image from the archive, unpacked once for every test of this file.
struct Image {
    /// Name and tag, as tests/image/build printed them.
    name: String,
    /// The image's OCI configuration (`config` of the image configuration).
    config: Value,
    /// Its root filesystem, unpacked (read it; never change it).
    rootfs: PathBuf,
    /// Its uncompressed size in bytes (the archive's).
    size: u64,
    /// This file's scratch directory: buildah storage, runc state and bundles.
    scratch: PathBuf,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cache_dir() -> PathBuf {
    std::env::var("SSO_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").expect("HOME is set")).join(".cache/sso-operator")
        })
}

fn run(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout_of(command: &mut Command) -> String {
    String::from_utf8(run(command).stdout).expect("UTF-8 output")
}

fn buildah(scratch: &Path) -> Command {
    let mut command = Command::new("buildah");
    command
        .arg("--root")
        .arg(scratch.join("storage"))
        .arg("--runroot")
        .arg(scratch.join("run"))
        .args(["--storage-driver", "vfs"]);
    command
}

fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let env_file = cache_dir().join("image/image.env");
        let env = std::fs::read_to_string(&env_file).unwrap_or_else(|e| {
            panic!(
                "read {}: {e}: build the image first with tests/image/build (scripts/test does)",
                env_file.display()
            )
        });
        let env: HashMap<&str, &str> = env.lines().filter_map(|l| l.split_once('=')).collect();
        let archive = env["IMAGE_ARCHIVE"];
        // One scratch directory per test binary, emptied at start: nothing accumulates when a
        // run is interrupted.
        let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("image-test");
        if scratch.exists() {
            // A storage left by an interrupted run may still have its container mounted.
            let _ = buildah(&scratch).args(["umount", "--all"]).output();
            std::fs::remove_dir_all(&scratch)
                .unwrap_or_else(|e| panic!("remove {}: {e}", scratch.display()));
        }
        std::fs::create_dir_all(&scratch).expect("create the scratch directory");
        let container = stdout_of(
            buildah(&scratch)
                .args(["from", "--pull-never", "--quiet"])
                .arg(format!("docker-archive:{archive}")),
        )
        .trim()
        .to_owned();
        let rootfs = PathBuf::from(stdout_of(buildah(&scratch).args(["mount", &container])).trim());
        let inspect: Value = serde_json::from_str(&stdout_of(buildah(&scratch).args([
            "inspect",
            "--type",
            "container",
            &container,
        ])))
        .expect("buildah inspect prints JSON");
        let config = inspect["OCIv1"]["config"].clone();
        // A docker-archive holds the layers uncompressed: its size is the image's.
        let size = std::fs::metadata(archive)
            .unwrap_or_else(|e| panic!("{archive}: {e}"))
            .len();
        Image {
            name: env["IMAGE"].to_owned(),
            config,
            rootfs,
            size,
            scratch,
        }
    })
}

/// Runs `args` in the image with runc as the pods run it: user 65532, a read-only root
/// filesystem, the image's environment, no network and no capabilities.
fn run_in_image(args: &[&str]) -> Output {
    run_in_container(args, true)
}

/// Runs `args` in the image with runc as user 65532, with a read-only root filesystem or not.
fn run_in_container(args: &[&str], read_only: bool) -> Output {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let image = image();
    let id = format!(
        "sso-image-test-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::SeqCst)
    );
    let bundle = image.scratch.join(&id);
    std::fs::create_dir_all(&bundle).expect("create the bundle directory");
    run(Command::new("runc").args(["spec", "--bundle"]).arg(&bundle));
    let spec_path = bundle.join("config.json");
    let mut spec: Value =
        serde_json::from_slice(&std::fs::read(&spec_path).expect("read config.json"))
            .expect("runc spec prints JSON");
    spec["root"] = json!({ "path": image.rootfs, "readonly": read_only });
    spec["process"]["terminal"] = json!(false);
    spec["process"]["user"] = json!({ "uid": RUNTIME_USER, "gid": RUNTIME_USER });
    spec["process"]["args"] = json!(args);
    spec["process"]["env"] = image.config["Env"].clone();
    spec["process"]["cwd"] = json!("/");
    spec["process"]["capabilities"] = json!({ "bounding": [], "effective": [], "permitted": [], "inheritable": [], "ambient": [] });
    spec["process"]["noNewPrivileges"] = json!(true);
    std::fs::write(&spec_path, serde_json::to_vec(&spec).expect("serialize")).expect("write");
    let out = Command::new("runc")
        .arg("--root")
        .arg(image.scratch.join("runc"))
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .output()
        .expect("run runc (tests/image/build installs it)");
    let _ = std::fs::remove_dir_all(&bundle);
    out
}

#[test]
fn image_runs_the_binary_as_65532_without_a_shell() {
    let config = &image().config;
    assert_eq!(config["User"], json!("65532:65532"), "{config}");
    // Exec form: the pods start the binary itself, never through a shell.
    assert_eq!(
        config["Entrypoint"],
        json!(["/usr/local/bin/sso-operator"]),
        "{config}"
    );
    assert_eq!(config["Cmd"], json!(["run"]), "{config}");
    let ports = config["ExposedPorts"]
        .as_object()
        .expect("exposed ports")
        .keys()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(ports, ["8080/tcp", "8081/tcp"]);
}

#[test]
fn binary_runs_in_the_image_on_a_read_only_root_as_65532() {
    let out = run_in_image(&["/usr/local/bin/sso-operator", "--version"]);
    assert!(
        out.status.success(),
        "sso-operator --version in {}: {}{}",
        image().name,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let version = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        version.trim(),
        format!("sso-operator {}", env!("CARGO_PKG_VERSION"))
    );
    // The root really is read-only: even the state directory, writable by 65532, refuses a
    // write when no volume is mounted there. (touch is Debian's, used only by this check.)
    let refused = run_in_image(&["/usr/bin/touch", "/var/lib/sso-operator/probe"]);
    assert!(!refused.status.success(), "a write succeeded on the root");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Read-only file system"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn crds_printed_in_the_image_equal_the_crds_folder() {
    let out = run_in_image(&["/usr/local/bin/sso-operator", "crd"]);
    assert!(
        out.status.success(),
        "sso-operator crd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = std::fs::read_to_string(repo_root().join("crds/sso-operator.yaml"))
        .expect("read crds/sso-operator.yaml");
    assert!(
        String::from_utf8_lossy(&out.stdout) == committed,
        "the image's binary prints CRDs other than crds/sso-operator.yaml: rebuild the image \
         with tests/image/build"
    );
}

#[test]
fn state_directory_belongs_to_65532_and_the_binary_to_root() {
    let rootfs = &image().rootfs;
    let state = std::fs::metadata(rootfs.join(STATE_DIR)).expect("the state directory exists");
    assert!(state.is_dir());
    assert_eq!((state.uid(), state.gid()), (RUNTIME_USER, RUNTIME_USER));
    assert_eq!(state.mode() & 0o700, 0o700, "mode {:o}", state.mode());
    // 65532 creates the SQLite database there (containers run with a writable root, or a
    // volume that takes the directory's ownership, as Docker's named volumes do).
    let created = run_in_container(
        &["/usr/bin/touch", "/var/lib/sso-operator/identity.db"],
        false,
    );
    assert!(
        created.status.success(),
        "65532 cannot write /var/lib/sso-operator: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let binary = std::fs::metadata(rootfs.join("usr/local/bin/sso-operator")).expect("binary");
    assert_eq!((binary.uid(), binary.gid()), (0, 0));
    assert_eq!(binary.mode() & 0o7777, 0o755, "mode {:o}", binary.mode());
}

#[test]
fn image_holds_the_runtime_libraries_and_no_build_tools() {
    let image = image();
    let rootfs = &image.rootfs;
    println!(
        "{}: {:.1} MiB uncompressed",
        image.name,
        image.size as f64 / 1024.0 / 1024.0
    );
    for library in [
        "usr/lib/x86_64-linux-gnu/libssl.so.3",
        "usr/lib/x86_64-linux-gnu/libxml2.so.2",
        "usr/lib/x86_64-linux-gnu/libxmlsec1-openssl.so.1",
        "etc/ssl/certs/ca-certificates.crt",
    ] {
        assert!(rootfs.join(library).exists(), "{library} is missing");
    }
    for absent in [
        "usr/bin/cc",
        "usr/bin/cargo",
        "usr/local/cargo",
        "usr/bin/pkg-config",
    ] {
        assert!(!rootfs.join(absent).exists(), "{absent} is in the image");
    }
    // Slim as debian:bookworm-slim: no manual pages, no documentation but the licences, no
    // package lists (dpkg keeps the symbolic links of excluded files, dangling).
    let files = |dir: &str| {
        let mut found = Vec::new();
        let mut pending = vec![rootfs.join(dir)];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let kind = entry.file_type().expect("file type");
                if kind.is_dir() {
                    pending.push(entry.path());
                } else if kind.is_file() {
                    found.push(entry.path());
                }
            }
        }
        found
    };
    assert_eq!(files("usr/share/man"), Vec::<PathBuf>::new());
    assert_eq!(files("var/lib/apt/lists"), Vec::<PathBuf>::new());
    let docs: Vec<_> = files("usr/share/doc")
        .into_iter()
        .filter(|f| f.file_name().is_some_and(|n| n != "copyright"))
        .collect();
    assert_eq!(docs, Vec::<PathBuf>::new());
    assert!(
        image.size < SIZE_BUDGET_BYTES,
        "{} is {} bytes, over the budget of {SIZE_BUDGET_BYTES}: see what the runtime stage \
         of the Dockerfile adds",
        image.name,
        image.size
    );
}
