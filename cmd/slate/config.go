package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"slate/appliance"
)

// envKeys maps SLATE_* variables to configuration keys; the others Slate knows are listed
// in otherEnv. Any other SLATE_* variable is a typo and stops start-up.
var envKeys = map[string]string{
	"SLATE_LISTEN": "listen", "SLATE_DATA_DIR": "data_dir", "SLATE_PUBLIC_URL": "public_url",
	"SLATE_LOG_FORMAT": "log_format", "SLATE_LOG_LEVEL": "log_level", "SLATE_TOKEN_TTL": "token_ttl",
	"SLATE_SYNCHRONOUS": "synchronous", "SLATE_FOUR_EYES": "four_eyes",
	"SLATE_SESSION_IDLE_TIMEOUT": "session_idle_timeout", "SLATE_IMAGE_UPLOAD_LIMIT_MIB": "image_upload_limit_mib",
}

var otherEnv = map[string]bool{"SLATE_ADMIN_PASSWORD": true, "SLATE_CONFIG": true, "SLATE_TOKEN": true, "SLATE_SERVER": true}

var yamlLineRE = regexp.MustCompile(`line (\d+): (.*)`)

// loadConfig layers defaults < YAML file < SLATE_* environment < flags.
func loadConfig(path string, environ []string, setFlags map[string]string) (appliance.Config, error) {
	cfg := appliance.Defaults()
	var root yaml.Node
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("read config file: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			msg := err.Error()
			if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
				problem := strings.Replace(m[2], "not found in type appliance.Config", "is not a configuration key", 1)
				problem = strings.ReplaceAll(problem, "field ", "key ")
				return cfg, fmt.Errorf("config file %s line %s: %s", path, m[1], problem)
			}
			return cfg, fmt.Errorf("config file %s: %v", path, msg)
		}
		_ = yaml.Unmarshal(data, &root)
	}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "SLATE_") || otherEnv[k] {
			continue
		}
		key, ok := envKeys[k]
		if !ok {
			return cfg, fmt.Errorf("environment variable %s is not a Slate setting (known: %s)", k, strings.Join(sortedKeys(envKeys), ", "))
		}
		if err := setKey(&cfg, key, v); err != nil {
			return cfg, fmt.Errorf("environment variable %s: %w", k, err)
		}
	}
	for key, v := range setFlags {
		if err := setKey(&cfg, key, v); err != nil {
			return cfg, fmt.Errorf("flag --%s: %w", strings.ReplaceAll(key, "_", "-"), err)
		}
	}
	if err := cfg.Validate(); err != nil {
		var fe *appliance.FieldError
		if errors.As(err, &fe) {
			if line := keyLine(&root, fe.Key); line > 0 {
				return cfg, fmt.Errorf("config file %s line %d: %w", path, line, err)
			}
		}
		return cfg, err
	}
	return cfg, nil
}

// keyLine finds the line of a top-level key in the YAML document (0: not there).
func keyLine(root *yaml.Node, key string) int {
	if root == nil || len(root.Content) == 0 {
		return 0
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i].Line
		}
	}
	return 0
}

// setKey sets one configuration key from text, by its yaml tag.
func setKey(cfg *appliance.Config, key, val string) error {
	v := reflect.ValueOf(cfg).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag != key {
			continue
		}
		f := v.Field(i)
		switch f.Interface().(type) {
		case string:
			f.SetString(val)
		case bool:
			b, err := strconv.ParseBool(val)
			if err != nil {
				return fmt.Errorf("%q is not true or false", val)
			}
			f.SetBool(b)
		case time.Duration:
			d, err := time.ParseDuration(val)
			if err != nil {
				return fmt.Errorf("%q is not a duration like 12h or 30m", val)
			}
			f.SetInt(int64(d))
		case int64:
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return fmt.Errorf("%q is not a whole number", val)
			}
			f.SetInt(n)
		default:
			return fmt.Errorf("key %s cannot be set from text", key)
		}
		return nil
	}
	return fmt.Errorf("unknown configuration key %s", key)
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// configFlags declares the serve flags that mirror configuration keys.
func configFlags(fs *flag.FlagSet) (configPath *string, values map[string]*string) {
	configPath = fs.String("config", "", "YAML configuration file (also SLATE_CONFIG)")
	values = map[string]*string{}
	for _, f := range []struct{ key, usage string }{
		{"listen", "HTTP address of the API, UI and boot files (default :8080)"},
		{"data_dir", "data directory: database, keys, deploy environment (default /var/lib/slate)"},
		{"public_url", "URL machines use to reach this Slate, e.g. http://10.0.0.5:8080"},
		{"log_format", "text or json"},
		{"log_level", "debug, info, warn or error"},
		{"token_ttl", "lifetime of API tokens, e.g. 12h"},
		{"session_idle_timeout", "a web UI session unused this long ends (default 30m; sessions also end after 12h)"},
		{"image_upload_limit_mib", "largest disk image uploaded on the web UI's releases page, in MiB (default 65536)"},
		{"synchronous", "SQLite durability: FULL (default) or NORMAL"},
		{"four_eyes", "true: a release must be approved by someone other than its author"},
	} {
		values[f.key] = fs.String(strings.ReplaceAll(f.key, "_", "-"), "", f.usage)
	}
	return configPath, values
}

// setFlagValues returns only the flags given on the command line.
func setFlagValues(fs *flag.FlagSet, values map[string]*string) map[string]string {
	out := map[string]string{}
	fs.Visit(func(f *flag.Flag) {
		key := strings.ReplaceAll(f.Name, "-", "_")
		if p, ok := values[key]; ok {
			out[key] = *p
		}
	})
	return out
}
