package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	wipecert "slate/wipe/cert"
)

// certCommands is `slate cert …`: offline checks of sanitization certificates and decommission
// reports, for auditors who hold only the files and the appliance's public key.
func certCommands() *command {
	return &command{name: "cert", summary: "verify and render sanitization certificates offline", subs: []*command{
		{name: "verify", summary: "check a certificate's (or decommission report's) signature and content",
			usage: "<file.json> --public-key <appliance-public-key.pem>", run: certVerify},
		{name: "pdf", summary: "verify a certificate or report and render it as PDF",
			usage: "<file.json> --public-key <key.pem> --out <file.pdf>", run: certPDF},
		{name: "public-key", summary: "print the appliance's signing public key (PEM), creating the key if needed",
			usage: "--key-dir <dir>", run: certPublicKey},
	}}
}

// certFlags takes "--name value" / "--name=value" flags anywhere among the arguments.
func certFlags(args []string, names ...string) (map[string]string, []string, error) {
	vals := map[string]string{}
	var pos []string
	known := map[string]bool{}
	for _, n := range names {
		known[n] = true
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !known[name] {
			return nil, nil, fmt.Errorf("unknown flag %s (flags: --%s)", a, strings.Join(names, ", --"))
		}
		if !hasVal {
			if i+1 >= len(args) {
				return nil, nil, fmt.Errorf("flag --%s needs a value", name)
			}
			i++
			val = args[i]
		}
		vals[name] = val
	}
	return vals, pos, nil
}

func loadPublicKey(path string) (ed25519.PublicKey, error) {
	if path == "" {
		return nil, fmt.Errorf("--public-key is required: the appliance's public key (`slate cert public-key --key-dir …` prints it)")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	return wipecert.ParsePublicKey(b)
}

// verifiedDoc is a verified certificate or report.
type verifiedDoc struct {
	cert   *wipecert.Certificate
	report *wipecert.Report
	sig    wipecert.SignatureBlock
}

func verifyFile(path, keyPath string) (verifiedDoc, error) {
	pub, err := loadPublicKey(keyPath)
	if err != nil {
		return verifiedDoc{}, err
	}
	file, err := os.ReadFile(path)
	if err != nil {
		return verifiedDoc{}, fmt.Errorf("read %s: %w", path, err)
	}
	env, err := wipecert.ParseEnvelope(file)
	if err != nil {
		return verifiedDoc{}, fmt.Errorf("%s: %w", path, err)
	}
	var head struct{ Schema string }
	_ = json.NewDecoder(bytes.NewReader(env.Document)).Decode(&head)
	out := verifiedDoc{sig: env.Signature}
	if head.Schema == wipecert.ReportSchema {
		r, err := wipecert.VerifyReport(file, pub)
		if err != nil {
			return out, fmt.Errorf("%s: %w", path, err)
		}
		out.report = &r
		return out, nil
	}
	c, err := wipecert.VerifyCertificate(file, pub)
	if err != nil {
		return out, fmt.Errorf("%s: %w", path, err)
	}
	out.cert = &c
	return out, nil
}

func certVerify(ctx context.Context, env *cliEnv, args []string) error {
	fl, pos, err := certFlags(args, "public-key")
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("usage: slate cert verify <file.json> --public-key <key.pem>")
	}
	d, err := verifyFile(pos[0], fl["public-key"])
	if err != nil {
		return err
	}
	if r := d.report; r != nil {
		fmt.Fprintf(env.stdout, "VALID decommission report %s: machine %s, %d drives, complete=%v, signed by key %s\n",
			r.ID, r.Machine.ID, len(r.Drives), r.Complete, d.sig.KeyID)
		for _, x := range r.Drives {
			fmt.Fprintf(env.stdout, "  %s %s serial %s: %s %s %s certificate %s\n", x.Device, x.Model, x.Serial, x.Status, x.Level, x.Method, x.CertificateID)
		}
		return nil
	}
	c := d.cert
	fmt.Fprintf(env.stdout, "VALID certificate %s: %s %s serial %s on machine %s: %s by %s, verification %q passed; %s to %s; signed by key %s\n",
		c.ID, c.Media.Make, c.Media.Model, c.Media.SerialNumber, c.Machine.ID, c.Sanitization.MethodType, c.Sanitization.Method,
		c.Sanitization.VerificationMethod, c.Run.Start.Format("2006-01-02 15:04:05Z"), c.Run.End.Format("2006-01-02 15:04:05Z"), d.sig.KeyID)
	return nil
}

func certPDF(ctx context.Context, env *cliEnv, args []string) error {
	fl, pos, err := certFlags(args, "public-key", "out")
	if err != nil {
		return err
	}
	if len(pos) != 1 || fl["out"] == "" {
		return fmt.Errorf("usage: slate cert pdf <file.json> --public-key <key.pem> --out <file.pdf>")
	}
	d, err := verifyFile(pos[0], fl["public-key"])
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if d.report != nil {
		err = wipecert.RenderReportPDF(&buf, *d.report, d.sig)
	} else {
		err = wipecert.RenderCertificatePDF(&buf, *d.cert, d.sig)
	}
	if err != nil {
		return err
	}
	if err := os.WriteFile(fl["out"], buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", fl["out"], err)
	}
	fmt.Fprintf(env.stdout, "wrote %s (%d bytes) from verified %s\n", fl["out"], buf.Len(), pos[0])
	return nil
}

func certPublicKey(ctx context.Context, env *cliEnv, args []string) error {
	fl, _, err := certFlags(args, "key-dir")
	if err != nil {
		return err
	}
	if fl["key-dir"] == "" {
		return fmt.Errorf("usage: slate cert public-key --key-dir <dir>")
	}
	priv, err := wipecert.LoadOrCreateSigningKey(fl["key-dir"], nil)
	if err != nil {
		return err
	}
	_, err = env.stdout.Write(wipecert.PublicKeyPEM(priv.Public().(ed25519.PublicKey)))
	return err
}
