//! The options of the commands that talk to a registry (`clay build docker://…`, `clay push`), spelled as podman
//! and skopeo spell them.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use clay_registry::{Access, AuthFiles, CertDirs, Credentials, RegistriesConf, RetryPolicy, DEFAULT_UPLOAD_CHUNK};

#[derive(Clone, Debug, Args)]
pub struct RegistryArgs {
    /// --tls-verify=false accepts any certificate and falls back to plain HTTP, for test and private registries
    /// [default: true, unless registries.conf marks the registry `insecure`].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub tls_verify: Option<bool>,
    /// Credentials for the registry [default: from $REGISTRY_AUTH_FILE, podman's and docker's auth files and the
    /// credential helpers docker's names].
    #[arg(long, value_name = "USER:PASSWORD")]
    pub creds: Option<String>,
    /// The auth file to take credentials from (podman's auth.json or docker's config.json format).
    #[arg(long, value_name = "PATH", conflicts_with = "creds")]
    pub authfile: Option<PathBuf>,
    /// The registry's CA certificates (*.crt, trusted besides the system's) and client certificate (NAME.cert with
    /// NAME.key) are in DIR [default: the registry's HOST[:PORT] directory in ~/.config/containers/certs.d,
    /// /etc/containers/certs.d or /etc/docker/certs.d].
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// The registries configuration (containers-registries.conf(5)): insecure and blocked registries, moved
    /// namespaces and mirrors [default: $CONTAINERS_REGISTRIES_CONF, else ~/.config/containers/registries.conf if it
    /// exists, else /etc/containers/registries.conf; with the drop-ins of registries.conf.d].
    #[arg(long, value_name = "FILE")]
    pub registries_conf: Option<PathBuf>,
}

impl RegistryArgs {
    /// TLS, credentials and registries.conf as the options say; what they leave open is looked up where podman and
    /// docker look.
    pub fn access(&self) -> Result<Access<'static>> {
        let credentials = match &self.creds {
            Some(creds) => match creds.split_once(':') {
                Some((user, password)) if !user.is_empty() => Some(Credentials::new(user, password)),
                _ => bail!("--creds must be USER:PASSWORD"),
            },
            None => None,
        };
        Ok(Access {
            tls_verify: self.tls_verify,
            registries: RegistriesConf::from_env(self.registries_conf.as_deref())?,
            auth: credentials,
            auth_files: self.authfile.clone().map_or_else(AuthFiles::from_env, |p| AuthFiles::new(vec![p])),
            cert_dirs: self.cert_dir.clone().map_or_else(CertDirs::from_env, CertDirs::fixed),
            progress: None,
            retry: RetryPolicy::default(),
            upload_chunk: DEFAULT_UPLOAD_CHUNK,
        })
    }
}
