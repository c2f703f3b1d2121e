//! `shoal completion SHELL`: the shell's completion script for every
//! command and flag, made by `clap_complete` from the command line itself.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, Error, Io};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  shoal completion bash > /etc/bash_completion.d/shoal
  shoal completion zsh > \"${fpath[1]}/_shoal\"
  shoal completion fish > ~/.config/fish/completions/shoal.fish")]
pub struct CompletionArgs {
    /// The shell to complete in
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: CompletionArgs, io: &mut Io<'_>) -> Result<(), Error> {
    // clap_complete panics when its writer fails (`shoal completion bash |
    // head`): the script is made in memory, then written.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "shoal", &mut script);
    io.out.write_all(&script)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(shell: Shell) -> String {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut io = Io {
            out: &mut out,
            err: &mut err,
        };
        run(CompletionArgs { shell }, &mut io).expect("completion");
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn scripts_complete_the_commands_and_their_flags() {
        let bash = script(Shell::Bash);
        assert!(bash.contains("complete -F _shoal"), "{bash}");
        for word in ["service", "stack", "--format", "--filter", "--no-trunc"] {
            assert!(bash.contains(word), "bash script lacks {word}");
        }
        assert!(script(Shell::Zsh).starts_with("#compdef shoal"));
        assert!(script(Shell::Fish).contains("complete -c shoal"));
    }
}
