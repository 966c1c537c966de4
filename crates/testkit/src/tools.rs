//! Where the kit finds the programs it runs. Each can be overridden by an environment variable
//! (read, never written): `COVENANT_FOUNDRY_BIN` (a directory holding anvil), `COVENANT_PG_BIN` (a
//! directory holding initdb, postgres and psql).

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The repository root: this crate lives at `crates/testkit`.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The path of a Foundry binary (`anvil`, `cast`, `forge`) installed by `npm ci`.
pub fn foundry_bin(tool: &'static str) -> Result<PathBuf> {
    let dir = std::env::var_os("COVENANT_FOUNDRY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("node_modules/.bin"));
    existing(
        tool,
        dir.join(tool),
        "run scripts/setup (it runs `npm ci`, which installs Foundry)",
    )
}

/// The directory holding PostgreSQL's server binaries.
pub fn pg_bin_dir() -> Result<PathBuf> {
    const HINT: &str = "install PostgreSQL (scripts/setup runs `apt-get install -y postgresql`) \
                        or set COVENANT_PG_BIN to the directory holding initdb";
    if let Some(dir) = std::env::var_os("COVENANT_PG_BIN") {
        let dir = PathBuf::from(dir);
        existing("initdb", dir.join("initdb"), HINT)?;
        return Ok(dir);
    }
    // Debian keeps server binaries out of PATH, under /usr/lib/postgresql/<major>/bin.
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major: u32 = entry.file_name().to_str()?.parse().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").is_file())
        .max_by_key(|(major, _)| *major);
    match newest {
        Some((_, bin)) => Ok(bin),
        None => Err(Error::ToolMissing {
            tool: "initdb",
            path: "/usr/lib/postgresql/*/bin".into(),
            hint: HINT,
        }),
    }
}

/// A binary of this workspace built in the same profile as the running test or bench (next to
/// its `deps/` directory): how one service's tests run another service without linking it.
/// `cargo test --workspace` builds every workspace binary.
pub fn workspace_bin(name: &'static str) -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|source| Error::Io {
        what: "locating the running executable",
        path: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    existing(
        name,
        profile_dir.join(name),
        "build the workspace's binaries in this profile: cargo build --workspace (--release for benches)",
    )
}

fn existing(tool: &'static str, path: PathBuf, hint: &'static str) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::ToolMissing { tool, path, hint })
    }
}
