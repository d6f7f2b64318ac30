//! The agent bootstrap scripts (`coder_agent.init_script`): our own, handed to Terraform as
//! `CODER_AGENT_SCRIPT_<os>_<arch>`, from which the coder provider makes each agent's init
//! script (it fills in `${ACCESS_URL}` and `${AUTH_TYPE}`). The script downloads
//! `<access url>/bin/coder-<os>-<arch>[.exe]` and runs `coder agent`.

const UNIX: &str = include_str!("bootstrap/unix.sh");
const WINDOWS: &str = include_str!("bootstrap/windows.ps1");

/// Every (os, arch) upstream's provider knows.
const PLATFORMS: &[(&str, &[&str])] = &[
    ("linux", &["amd64", "arm64", "armv7"]),
    ("darwin", &["amd64", "arm64"]),
    ("windows", &["amd64", "arm64"]),
];

/// The environment that gives the coder provider its init scripts.
pub fn agent_script_env() -> Vec<(String, String)> {
    PLATFORMS
        .iter()
        .flat_map(|(os, arches)| {
            arches.iter().map(move |arch| {
                let template = if *os == "windows" { WINDOWS } else { UNIX };
                let script = template.replace("${OS}", os).replace("${ARCH}", arch);
                (format!("CODER_AGENT_SCRIPT_{os}_{arch}"), script)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_name_the_platforms_binary() {
        let env = agent_script_env();
        let linux = &env
            .iter()
            .find(|(k, _)| k == "CODER_AGENT_SCRIPT_linux_amd64")
            .unwrap()
            .1;
        assert!(linux.contains("url=\"${ACCESS_URL}bin/coder-linux-amd64\""));
        assert!(linux.contains("CODER_AGENT_AUTH=\"${AUTH_TYPE}\""));
        let win = &env
            .iter()
            .find(|(k, _)| k == "CODER_AGENT_SCRIPT_windows_arm64")
            .unwrap()
            .1;
        assert!(win.contains("bin/coder-windows-arm64.exe"));
        assert_eq!(env.len(), 7);
    }
}
