//! The two flags both benchmark baselines (`ceiling`, `bare`) take: `--listen ADDR` (default
//! `127.0.0.1:0`) and `--bytes N`, as `--flag value` or `--flag=value`. Shared by `#[path]`.

/// `(listen address, body size if given)`, or the one-line reason the arguments are wrong.
pub fn parse(args: impl Iterator<Item = String>) -> Result<(String, Option<usize>), String> {
    let mut listen = "127.0.0.1:0".to_owned();
    let mut bytes = None;
    let mut args = args;
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("missing value for {flag}"))
        };
        match flag.as_str() {
            "--listen" => listen = value()?,
            "--bytes" => {
                let v = value()?;
                bytes = Some(v.parse().map_err(|_| {
                    format!("invalid value {v:?} for --bytes: expected a byte count")
                })?);
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok((listen, bytes))
}
