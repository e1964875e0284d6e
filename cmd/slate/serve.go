package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"slate/appliance"
)

func newFlagSet(env *cliEnv, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "Usage: %s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

func newLogger(format, level string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func serveCommand() *command {
	return &command{name: "serve", summary: "run the appliance: API, web UI, network boot services",
		run: func(ctx context.Context, env *cliEnv, args []string) error {
			fs := newFlagSet(env, "serve", "slate serve [--config FILE] [--listen ADDR] [--data-dir DIR] ...")
			cfgPath, vals := configFlags(fs)
			if err := fs.Parse(args); err != nil {
				return err
			}
			path := *cfgPath
			if path == "" {
				path = env.getenv("SLATE_CONFIG")
			}
			cfg, err := loadConfig(path, env.environ(), setFlagValues(fs, vals))
			if err != nil {
				return err
			}
			log := newLogger(cfg.LogFormat, cfg.LogLevel)
			a, err := appliance.New(ctx, cfg, appliance.Options{Logger: log, AdminPassword: env.getenv("SLATE_ADMIN_PASSWORD"), Out: env.stdout, Version: version})
			if err != nil {
				return err
			}
			defer a.Close()
			return a.Run(ctx)
		}}
}
