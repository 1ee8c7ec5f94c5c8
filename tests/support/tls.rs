//! Certificate authorities for the `https://` tests, made with the `openssl` command (Debian's
//! `openssl`, installed by scripts/test): a CA and a server certificate it signed for
//! `127.0.0.1` and `localhost`, as PEM files in a scratch folder.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files of one authority: its certificate, and a server certificate and key it signed.
pub struct Authority {
    /// The CA's certificate (what a client must trust).
    pub ca: PathBuf,
    /// The server's certificate.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new CA named `name` in `dir`, and a server certificate for 127.0.0.1 it signed.
pub fn authority(dir: &Path, name: &str) -> Authority {
    let key = |file: &str| {
        [
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            file,
        ]
        .map(String::from)
        .to_vec()
    };
    let (ca, ca_key, cert, server_key, csr, ext) = (
        format!("{name}-ca.pem"),
        format!("{name}-ca.key"),
        format!("{name}-server.pem"),
        format!("{name}-server.key"),
        format!("{name}-server.csr"),
        format!("{name}-ext.cnf"),
    );
    let mut args = key(&ca_key);
    args.extend(
        [
            "-x509",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
            "-out",
            &ca,
        ]
        .map(String::from),
    );
    openssl(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut args = key(&server_key);
    args.extend(["-subj", "/CN=localhost", "-out", &csr].map(String::from));
    openssl(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    std::fs::write(
        dir.join(&ext),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    );
    Authority {
        ca: dir.join(ca),
        cert: dir.join(cert),
        key: dir.join(server_key),
    }
}
