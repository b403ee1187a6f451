//! `rampart gen`: man pages (clap_mangen) and shell completions (clap_complete) made from the
//! command line's own definition, so they can't drift from it (the .deb ships them).
use std::path::Path;

use anyhow::{Context, Result};
use clap::Command;
use clap_complete::Shell;

/// `rampart.1` and one page per subcommand (`rampart-run.1`, ...), as git and cargo do.
/// Returns the files written.
pub fn man_pages(cmd: Command, dir: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    write_pages(cmd, dir, "rampart", &mut written)?;
    Ok(written)
}

fn write_pages(cmd: Command, dir: &Path, name: &str, written: &mut Vec<String>) -> Result<()> {
    let cmd = cmd.name(name.to_owned());
    let file = format!("{name}.1");
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    let path = dir.join(&file);
    std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    written.push(file);
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let sub_name = format!("{name}-{}", sub.get_name());
        write_pages(sub.clone(), dir, &sub_name, written)?;
    }
    Ok(())
}

/// The completion script for `shell` on stdout (or `out`).
pub fn completions(mut cmd: Command, shell: Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut cmd, "rampart", out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli() -> Command {
        Command::new("rampart")
            .about("test")
            .subcommand(Command::new("run").arg(clap::arg!(--config <FILE> "config file")))
            .subcommand(Command::new("anycast").subcommand(Command::new("drain").about("withdraw")))
    }

    #[test]
    fn a_page_per_subcommand_and_completions() {
        let dir = tempfile::tempdir().unwrap();
        let files = man_pages(cli(), dir.path()).unwrap();
        assert_eq!(
            files,
            [
                "rampart.1",
                "rampart-run.1",
                "rampart-anycast.1",
                "rampart-anycast-drain.1"
            ]
        );
        let run = std::fs::read_to_string(dir.path().join("rampart-run.1")).unwrap();
        assert!(run.contains(".TH rampart-run 1"), "{run}");
        assert!(run.contains("config file"), "{run}");
        let mut bash = Vec::new();
        completions(cli(), Shell::Bash, &mut bash);
        let bash = String::from_utf8(bash).unwrap();
        assert!(
            bash.contains("--config") && bash.contains("complete -F"),
            "{bash}"
        );
    }
}
