// Package config is mlop-agent's configuration: the YAML schema, its
// defaults, ${ENV} expansion, strict decoding, the environment fallbacks the
// pluto/mlop SDK uses, and validation that reports every problem with its
// key path and line.
//
// Loading runs in this order (Load, Parse):
//
//  1. The YAML is parsed into a node tree. ${VAR} and ${VAR:-default} are
//     expanded in scalar values (never in keys or comments); $$ is a literal
//     dollar. Expansion happens after parsing, so a variable's value can never
//     change the document's structure.
//  2. The tree is decoded strictly over Default(): an unknown key, a duplicate
//     key or a value of the wrong type is an error naming the key path and line
//     (with a did-you-mean suggestion for unknown keys). Each list item under
//     sources starts from DefaultSource().
//  3. Relative paths are resolved against the config file's directory (Parse
//     without a file uses the working directory), then the environment
//     fallbacks fill what the file left empty (see Server and Config.Project).
//  4. Per-source defaults are filled in and Validate runs. All problems of
//     steps 2-4 are returned together, sorted by line.
//
// The package imports nothing from the module; yaml.v3 is used here only and
// none of its types appear in the API.
package config

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
	"time"
)

// Config is the whole agent configuration. The zero value is not useful;
// start from Default or Load.
type Config struct {
	Server Server `yaml:"server"`
	// Project is the default project of every source. When empty in the
	// file it comes from PLUTO_PROJECT, then MLOP_PROJECT, then
	// DefaultProject (the SDK's own default).
	Project string `yaml:"project"`
	// StateDir holds checkpoints and the run-id map.
	StateDir string `yaml:"state_dir"`
	// ShutdownTimeout bounds the drain on SIGINT/SIGTERM.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// HeartbeatInterval is how often each active run is reported alive
	// (/api/runs/trigger). 1s to 120s; above 30s draws a warning.
	HeartbeatInterval Duration   `yaml:"heartbeat_interval"`
	Log               Log        `yaml:"log"`
	HTTP              HTTP       `yaml:"http"`
	Batch             Batch      `yaml:"batch"`
	Buffer            Buffer     `yaml:"buffer"`
	Checkpoint        Checkpoint `yaml:"checkpoint"`
	DeadLetter        DeadLetter `yaml:"dead_letter"`
	Watch             Watch      `yaml:"watch"`
	Uploads           Uploads    `yaml:"uploads"`
	Sources           []Source   `yaml:"sources"`

	// File is the absolute path of the loaded file, "" for Parse.
	File string `yaml:"-"`
	// Dir is the directory relative paths were resolved against.
	Dir string `yaml:"-"`
	// Warnings are problems that do not stop the agent, each formatted like
	// a FieldError ("file:line: path: message"). The agent logs them.
	Warnings []string `yaml:"-"`

	name    string            // file name for messages, as given
	lines   map[string]int    // key path -> line of the key (or list item)
	origins map[string]origin // key path -> where a value not from the file came from
}

// Server is how to reach the mlop/pluto server.
//
// Each URL is taken, in order, from: the key in the file; http://host:PORT
// when server.host is set (3000 app, 3001 api, 3003 ingest, 3004 py);
// PLUTO_URL_<X>; MLOP_URL_<X>; the pluto default (DefaultURLApp and so on).
//
// The API key is taken from: server.api_key; the file named by
// server.api_key_file (trimmed); PLUTO_API_KEY; MLOP_API_KEY; MLOP_API_TOKEN.
// Setting both api_key and api_key_file is an error. APIKeySource says which
// one was used.
type Server struct {
	URLApp     string `yaml:"url_app"`    // UI base, only used to print links
	URLAPI     string `yaml:"url_api"`    // backend: runs, tags, config, status
	URLIngest  string `yaml:"url_ingest"` // ingest: metrics, data, logs, files
	URLPy      string `yaml:"url_py"`     // py service: heartbeat (trigger)
	Host       string `yaml:"host"`       // self-hosted shorthand for the four URLs
	APIKey     Secret `yaml:"api_key"`
	APIKeyFile string `yaml:"api_key_file"`
	// Timeout bounds each HTTP attempt.
	Timeout     Duration `yaml:"timeout"`
	Retry       Retry    `yaml:"retry"`
	TLS         TLS      `yaml:"tls"`
	MaxInFlight int      `yaml:"max_in_flight"` // concurrent ingest requests in total

	apiKeySource string
}

// APIKeySource describes where the API key came from, for messages such as
// the one printed on 401: "config file /etc/agent.yaml (server.api_key)",
// "file /run/secrets/key (server.api_key_file)" or "environment variable
// PLUTO_API_KEY". It is "" when there is no key. It never contains the key.
func (s Server) APIKeySource() string { return s.apiKeySource }

// RequireAPIKey returns an error wrapping ErrNoAPIKey, with a hint naming
// every place a key can come from, when no key is configured. Commands that
// talk to the server call it; those that do not (once, check) need no key.
func (s Server) RequireAPIKey() error {
	if s.APIKey != "" {
		return nil
	}
	return &FieldError{Path: "server.api_key", Err: fmt.Errorf("%w: set server.api_key, server.api_key_file or PLUTO_API_KEY (MLOP_API_KEY and MLOP_API_TOKEN are also read)", ErrNoAPIKey)}
}

// Retry is the retry policy for HTTP requests.
type Retry struct {
	InitialBackoff Duration `yaml:"initial_backoff"`
	MaxBackoff     Duration `yaml:"max_backoff"`  // also caps Retry-After
	MaxAttempts    int      `yaml:"max_attempts"` // 0 = retry forever
}

// TLS configures certificate verification.
type TLS struct {
	CAFile             string `yaml:"ca_file"` // extra PEM roots
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Log configures the agent's own logging.
type Log struct {
	Level  string `yaml:"level"`  // debug|info|warn|error; MLOP_AGENT_LOG_LEVEL overrides
	Format string `yaml:"format"` // text|json
}

// HTTP configures the agent's own HTTP endpoint (metrics, health).
type HTTP struct {
	Listen string `yaml:"listen"` // host:port; off when empty
}

// Batch bounds one ingest request.
type Batch struct {
	MaxLines int      `yaml:"max_lines"`
	MaxBytes ByteSize `yaml:"max_bytes"`
	Linger   Duration `yaml:"linger"` // how long a partial batch waits for more
}

// Buffer bounds the data read but not yet acknowledged.
type Buffer struct {
	MaxBytes ByteSize `yaml:"max_bytes"` // reading pauses when full
}

// Checkpoint configures how often acknowledged positions are saved.
type Checkpoint struct {
	Interval Duration `yaml:"interval"`
}

// DeadLetter configures where rejected records are kept.
type DeadLetter struct {
	// Path receives one JSON line per rejected record (file, line, reason,
	// data). Off when empty.
	Path string `yaml:"path"`
}

// Watch configures file discovery and tailing.
type Watch struct {
	PollInterval     Duration `yaml:"poll_interval"`     // rescan of globs and stat of files
	FingerprintBytes ByteSize `yaml:"fingerprint_bytes"` // identity = hash of the first N bytes; at least 16
	MaxLineBytes     ByteSize `yaml:"max_line_bytes"`    // longer lines are bad records
	MaxOpenFiles     int      `yaml:"max_open_files"`
}

// Uploads restricts which local files may be uploaded.
type Uploads struct {
	// Roots are directories; files outside them are never uploaded. Empty
	// means the directories of the sources' paths (see Config.UploadRoots).
	Roots []string `yaml:"roots"`
}

// Source is one set of input files read with one format.
type Source struct {
	Name    string   `yaml:"name"`    // required, unique, [A-Za-z0-9_.-]+
	Format  string   `yaml:"format"`  // one of KnownFormats
	Paths   []string `yaml:"paths"`   // globs, ** allowed; at least one
	Exclude []string `yaml:"exclude"` // globs; without a "/" they match the file name
	// Project overrides Config.Project; after loading it is always set.
	Project   string `yaml:"project"`
	StepField string `yaml:"step_field"` // "" = format default
	TimeField string `yaml:"time_field"` // "" = format default
	RunField  string `yaml:"run_field"`  // field/column selecting the run
	// IdleTimeout marks a live run COMPLETED after this long without data.
	// 0 = the agent's default; Never disables it.
	IdleTimeout    Duration `yaml:"idle_timeout"`
	StepMultiplier int64    `yaml:"step_multiplier"` // Neptune fractional steps: 0 = automatic
	// MaxNamesPerRun caps the distinct metric and series names of one run;
	// points of further names are bad records. 0 = the agent's default.
	MaxNamesPerRun int               `yaml:"max_names_per_run"`
	Params         map[string]string `yaml:"params"` // format-specific options
	CSV            CSV               `yaml:"csv"`
	Run            Run               `yaml:"run"`
}

// CSV holds the csv format's options.
type CSV struct {
	Delimiter string `yaml:"delimiter"` // "" = auto (comma, tab, semicolon); else one character
	Comment   string `yaml:"comment"`   // lines starting with it are skipped; "" = none
}

// Run describes the runs a source creates.
type Run struct {
	// Name is a template (see ParseRunTemplate); "" = format default.
	Name string `yaml:"name"`
	// ID is the externalId template; "" = derived from source and path by
	// the agent.
	ID   string   `yaml:"id"`
	Tags []string `yaml:"tags"`
	// Config is sent as the run's config. It is JSON-compatible: string
	// keys, and values that are nil, bool, int (int64 or uint64 when
	// large), float64 (finite), string (timestamps stay text), []any or
	// map[string]any.
	Config map[string]any `yaml:"config"`
	// ConfigFiles are globs, relative to the metric file, of files merged
	// into the run's config (hparams.yaml, args.json).
	ConfigFiles []string `yaml:"config_files"`
}

// The pluto defaults, used when neither the file nor the environment sets a
// URL or project (Trainy-ai/pluto sets.py).
const (
	DefaultURLApp    = "https://pluto.trainy.ai"
	DefaultURLAPI    = "https://pluto-api.trainy.ai"
	DefaultURLIngest = "https://pluto-ingest.trainy.ai"
	DefaultURLPy     = "https://pluto-py.trainy.ai"
	// DefaultProject is the SDK's default project (its package tag).
	DefaultProject = "pluto"
)

// knownFormats is in the order the docs list them.
var knownFormats = []string{"jsonl", "csv", "neptune", "neptune-export", "tensorboard", "lightning", "keras", "yolo", "sb3", "sb3-progress", "mlflow", "hf-trainer"}

// KnownFormats returns the format names a source may use (a fresh slice).
// config imports nothing from the module, so this is its own copy of
// parsers/presets.FormatNames; TestFormatsAgree (cmd/mlop-agent) keeps the
// two, the README's formats table and -h in agreement.
func KnownFormats() []string { return slices.Clone(knownFormats) }

// Default returns the configuration used for every key the file leaves out.
// URLs, the API key and the project are empty here: they are filled from the
// environment or the pluto defaults while loading.
func Default() *Config {
	return &Config{
		Server: Server{
			Timeout: Duration(30 * time.Second),
			Retry: Retry{
				InitialBackoff: Duration(500 * time.Millisecond),
				MaxBackoff:     Duration(30 * time.Second),
			},
			MaxInFlight: 8,
		},
		StateDir:          ".mlop-agent",
		ShutdownTimeout:   Duration(30 * time.Second),
		HeartbeatInterval: Duration(30 * time.Second),
		Log:               Log{Level: "info", Format: "text"},
		Batch:             Batch{MaxLines: 5000, MaxBytes: 1 << 20, Linger: Duration(10 * time.Millisecond)},
		Buffer:            Buffer{MaxBytes: 64 << 20},
		Checkpoint:        Checkpoint{Interval: Duration(time.Second)},
		Watch: Watch{
			PollInterval:     Duration(time.Second),
			FingerprintBytes: 1024,
			MaxLineBytes:     1 << 20,
			MaxOpenFiles:     1024,
		},
	}
}

// DefaultSource returns the values a list item under sources starts from.
func DefaultSource() Source {
	return Source{CSV: CSV{Comment: "#"}}
}

// RunTemplateData is what run.name and run.id templates are executed with.
type RunTemplateData struct {
	Source string // the source's name
	Path   string // the metric file's absolute path
	Dir    string // the base name of the file's directory ("runs/a/m.jsonl" -> "a")
	Stem   string // the file name without its extension ("metrics")
	Run    string // the value of run_field ("" when unset)
	// Short is the shortest trailing part of the path that tells the
	// source's files apart ("runs/a/metrics.jsonl" and
	// "runs/b/metrics.jsonl" -> "a", "b"): the default run name.
	Short string
}

// ParseRunTemplate parses a run.name or run.id template the way the agent
// executes it: text/template, missing keys are errors. Loading already
// checked that every configured template parses and executes on
// RunTemplateData.
func ParseRunTemplate(name, text string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, err
	}
	// Execute once on sample data: a misspelt field ({{.Stme}}) only shows
	// up at execution time.
	sample := RunTemplateData{Source: "s", Path: "/d/f.jsonl", Dir: "d", Stem: "f", Run: "r", Short: "d"}
	if err := t.Execute(io.Discard, sample); err != nil {
		return nil, err
	}
	return t, nil
}

// LineOf returns the line of the key at path ("sources[1].paths") in the
// loaded file, or of its closest ancestor that is in the file, or 0. The
// agent uses it to place errors it finds later, through FieldError.
func (c *Config) LineOf(path string) int {
	for p := path; p != ""; p = parentPath(p) {
		if l, ok := c.lines[p]; ok {
			return l
		}
	}
	return 0
}

// FieldError returns a FieldError for path with the file name and line
// filled in, for problems found after loading ("sources[1].paths: no file
// matches").
func (c *Config) FieldError(path string, value any, err error) *FieldError {
	return &FieldError{File: c.name, Path: path, Line: c.LineOf(path), Value: value, Err: err}
}

// UploadRoots returns uploads.roots, or when it is empty the static
// directory prefix of every source path glob ("/x/runs/*/m.jsonl" ->
// "/x/runs"), sorted and without duplicates.
func (c *Config) UploadRoots() []string {
	if len(c.Uploads.Roots) > 0 {
		return slices.Clone(c.Uploads.Roots)
	}
	var roots []string
	for _, s := range c.Sources {
		for _, p := range s.Paths {
			roots = append(roots, globBase(p))
		}
	}
	slices.Sort(roots)
	return slices.Compact(roots)
}

// globBase returns the directory part of pattern before its first segment
// holding a glob metacharacter.
func globBase(pattern string) string {
	segs := strings.Split(filepath.ToSlash(pattern), "/")
	for i, seg := range segs {
		if strings.ContainsAny(seg, `*?[\`) {
			base := strings.Join(segs[:i], "/")
			if base == "" {
				base = "/"
			}
			return filepath.FromSlash(base)
		}
	}
	return filepath.Dir(pattern)
}

// parentPath strips the last element of a key path: "a.b[2]" -> "a.b",
// "a.b" -> "a", "a" -> "".
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}
