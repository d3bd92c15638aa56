package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
)

// cmdCompletion prints a shell completion script: the commands, the import
// and verify kinds, and each command's flags, read from the commands' own
// -h texts so the script cannot drift from the binary.
func cmdCompletion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("completion bash|zsh|fish", "Print a shell completion script for mlop-agent.\n\n"+
		"  bash: source <(mlop-agent completion bash)      (or save it in /etc/bash_completion.d/)\n"+
		"  zsh:  mlop-agent completion zsh > \"${fpath[1]}/_mlop-agent\"\n"+
		"  fish: mlop-agent completion fish > ~/.config/fish/completions/mlop-agent.fish",
		"mlop-agent completion bash > /etc/bash_completion.d/mlop-agent", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return &usageError{"say which shell: bash, zsh or fish"}
	}
	shell := fs.Arg(0)
	spec := completionSpec()
	switch shell {
	case "bash":
		writeBash(stdout, spec)
	case "zsh":
		fmt.Fprintln(stdout, "#compdef mlop-agent")
		fmt.Fprintln(stdout, "autoload -U +X bashcompinit && bashcompinit")
		writeBash(stdout, spec)
	case "fish":
		writeFish(stdout, spec)
	default:
		return &usageError{fmt.Sprintf("completion for %q: want bash, zsh or fish", shell)}
	}
	return nil
}

// compSpec is what completes: commands, their flags and sub-kinds.
type compSpec struct {
	commands []string
	flags    map[string][]string // by command (and "import neptune", ...)
	kinds    map[string][]string // import/verify kinds
}

func completionSpec() compSpec {
	spec := compSpec{flags: map[string][]string{}, kinds: map[string][]string{}}
	for _, c := range commands {
		spec.commands = append(spec.commands, c.name)
	}
	kinds := make([]string, 0, len(importKinds))
	for k := range importKinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, c := range commands {
		switch c.name {
		case "import", "verify":
			spec.kinds[c.name] = kinds
			for _, k := range kinds {
				spec.flags[c.name+" "+k] = helpFlags(c.name, k)
			}
		case "completion":
			spec.kinds[c.name] = []string{"bash", "zsh", "fish"}
		default:
			spec.flags[c.name] = helpFlags(c.name)
		}
	}
	return spec
}

// helpFlags runs a command's -h in-process and collects its flag names.
func helpFlags(args ...string) []string {
	var out bytes.Buffer
	realMain(context.Background(), append(args, "-h"), io.Discard, &out)
	var flags []string
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "  -") {
			continue
		}
		for _, f := range strings.Split(strings.Fields(line)[0]+" "+strings.Join(strings.Fields(line)[1:], " "), ", ") {
			if name := strings.Fields(f); len(name) > 0 && strings.HasPrefix(name[0], "-") {
				flags = append(flags, name[0])
			}
		}
	}
	return flags
}

func writeBash(w io.Writer, s compSpec) {
	fmt.Fprintf(w, `# mlop-agent bash completion (mlop-agent completion bash)
_mlop_agent() {
  local cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[1]} kind=${COMP_WORDS[2]}
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W %q -- "$cur")); return
  fi
  case "$cmd" in
`, strings.Join(s.commands, " "))
	for _, c := range s.commands {
		kinds := s.kinds[c]
		fmt.Fprintf(w, "    %s)\n", c)
		if len(kinds) > 0 {
			fmt.Fprintf(w, "      if [ \"$COMP_CWORD\" -eq 2 ]; then COMPREPLY=($(compgen -W %q -- \"$cur\")); return; fi\n", strings.Join(kinds, " "))
			fmt.Fprintf(w, "      case \"$kind\" in\n")
			for _, k := range kinds {
				if f := s.flags[c+" "+k]; len(f) > 0 {
					fmt.Fprintf(w, "        %s) [[ \"$cur\" == -* ]] && COMPREPLY=($(compgen -W %q -- \"$cur\")) || COMPREPLY=($(compgen -f -- \"$cur\"));;\n", k, strings.Join(f, " "))
				}
			}
			fmt.Fprintf(w, "      esac;;\n")
			continue
		}
		fmt.Fprintf(w, "      [[ \"$cur\" == -* ]] && COMPREPLY=($(compgen -W %q -- \"$cur\")) || COMPREPLY=($(compgen -f -- \"$cur\"));;\n", strings.Join(s.flags[c], " "))
	}
	fmt.Fprintf(w, "  esac\n}\ncomplete -F _mlop_agent mlop-agent\n")
}

func writeFish(w io.Writer, s compSpec) {
	fmt.Fprintln(w, "# mlop-agent fish completion (mlop-agent completion fish)")
	fmt.Fprintf(w, "complete -c mlop-agent -f -n __fish_use_subcommand -a %q\n", strings.Join(s.commands, " "))
	for _, c := range s.commands {
		if kinds := s.kinds[c]; len(kinds) > 0 {
			fmt.Fprintf(w, "complete -c mlop-agent -f -n '__fish_seen_subcommand_from %s' -a %q\n", c, strings.Join(kinds, " "))
			for _, k := range kinds {
				writeFishFlags(w, fmt.Sprintf("__fish_seen_subcommand_from %s; and __fish_seen_subcommand_from %s", c, k), s.flags[c+" "+k])
			}
			continue
		}
		writeFishFlags(w, "__fish_seen_subcommand_from "+c, s.flags[c])
	}
}

func writeFishFlags(w io.Writer, cond string, flags []string) {
	for _, f := range flags {
		if strings.HasPrefix(f, "--") {
			fmt.Fprintf(w, "complete -c mlop-agent -n '%s' -l %s\n", cond, strings.TrimPrefix(f, "--"))
		} else {
			fmt.Fprintf(w, "complete -c mlop-agent -n '%s' -s %s\n", cond, strings.TrimPrefix(f, "-"))
		}
	}
}
