// Command benchtable runs the benchmarks of this module and prints a
// Markdown table of their medians: ns/op, B/op and allocs/op of dcsssl
// ("this"), the official SDK and the floor, the ratios this/official and
// this/floor, the calls/s of the concurrent benchmark, and whether the
// performance targets are met.
//
// Run it from the benchmarks directory:
//
//	go run ./cmd/benchtable -count 6
//
// The test binary is built once and run count times, each run doing every
// benchmark once, so that a burst of load on the machine lands on all three
// clients alike rather than on the few runs of one of them. With -in it
// reads saved `go test -bench` output instead of running anything.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
)

func main() {
	count := flag.Int("count", 6, "how many times to run each benchmark; the table shows medians")
	bench := flag.String("bench", ".", "which benchmarks to run (go test -bench)")
	benchtime := flag.String("benchtime", "1s", "time or iterations per benchmark run (go test -benchtime)")
	in := flag.String("in", "", "read `go test -bench` output from this file instead of running the benchmarks")
	raw := flag.String("raw", "", "also write the raw benchmark output to this file")
	flag.Parse()
	if err := run(*count, *bench, *benchtime, *in, *raw); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(count int, bench, benchtime, in, raw string) error {
	if count < 1 {
		return errors.New("-count must be at least 1")
	}
	var out []byte
	var err error
	if in != "" {
		out, err = os.ReadFile(in)
	} else {
		out, err = runBenchmarks(count, bench, benchtime)
	}
	if err != nil {
		return err
	}
	if raw != "" {
		if err := os.WriteFile(raw, out, 0o644); err != nil {
			return err
		}
	}
	res, env := parse(bytes.NewReader(out))
	if len(res) == 0 {
		return errors.New("no benchmark results in the output")
	}
	printTable(os.Stdout, res, env)
	return nil
}

// runBenchmarks builds the test binary and runs it count times, echoing
// its output to stderr as it goes.
func runBenchmarks(count int, bench, benchtime string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "benchtable")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "benchmarks.test")
	build := exec.Command("go", "test", "-c", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("building the benchmarks: %w", err)
	}
	var all bytes.Buffer
	for i := 1; i <= count; i++ {
		fmt.Fprintf(os.Stderr, "benchtable: run %d of %d\n", i, count)
		cmd := exec.Command(bin, "-test.run", "^$", "-test.bench", bench,
			"-test.benchmem", "-test.benchtime", benchtime, "-test.count", "1")
		cmd.Stdout = io.MultiWriter(&all, os.Stderr)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("run %d: %w", i, err)
		}
	}
	return all.Bytes(), nil
}

// key names one benchmark: its group ("DownloadSSLCert/canned") and the
// client ("this", "official" or "floor").
type key struct{ group, client string }

// results holds every measurement of every benchmark, by unit.
type results map[key]map[string][]float64

// env is what go test says about the machine.
type env struct{ goos, goarch, cpu string }

var (
	benchLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)
	pairRE    = regexp.MustCompile(`([-+0-9.eE]+)\s+(\S+)`)
)

func parse(r io.Reader) (results, env) {
	res := results{}
	var e env
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "goos: "):
			e.goos = strings.TrimPrefix(line, "goos: ")
		case strings.HasPrefix(line, "goarch: "):
			e.goarch = strings.TrimPrefix(line, "goarch: ")
		case strings.HasPrefix(line, "cpu: "):
			e.cpu = strings.TrimSpace(strings.TrimPrefix(line, "cpu: "))
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name := m[1]
		i := strings.LastIndex(name, "/")
		if i < 0 {
			continue
		}
		k := key{group: name[:i], client: name[i+1:]}
		if res[k] == nil {
			res[k] = map[string][]float64{}
		}
		for _, p := range pairRE.FindAllStringSubmatch(m[2], -1) {
			v, err := strconv.ParseFloat(p[1], 64)
			if err == nil {
				res[k][p[2]] = append(res[k][p[2]], v)
			}
		}
	}
	return res, e
}

func median(xs []float64) (float64, bool) {
	if len(xs) == 0 {
		return 0, false
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2], true
	}
	return (s[n/2-1] + s[n/2]) / 2, true
}

func (r results) median(group, client, unit string) (float64, bool) {
	return median(r[key{group, client}][unit])
}

// rows lists the groups in the order they are printed, with their label.
var rows = []struct{ group, label string }{
	{"DownloadSSLCert/canned", "per call, canned transport"},
	{"DownloadSSLCert/loopback-tls", "per call, loopback TLS server"},
	{"Concurrent", "32 goroutines, loopback TLS server"},
	{"ColdStart", "new client + first call, canned transport"},
}

var clients = []string{"this", "official", "floor"}

func printTable(w io.Writer, r results, e env) {
	fmt.Fprintf(w, "## DownloadSSLCert: dcsssl (this) vs the official SDK vs the floor\n\n")
	fmt.Fprintf(w, "Medians of %d runs; %s/%s, %s, %d cores (GOMAXPROCS %d); CPU %s",
		maxRuns(r), e.goos, e.goarch, runtime.Version(), runtime.NumCPU(), runtime.GOMAXPROCS(0), cpuName(e))
	fmt.Fprintf(w, ".\n\n")
	fmt.Fprintln(w, "| benchmark | metric | this | official | floor | this/official | this/floor |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|")
	for _, row := range rows {
		units := []string{"ns/op", "cpu-ns/op", "B/op", "allocs/op"}
		if row.group == "Concurrent" {
			units = append([]string{"calls/s"}, units...)
		}
		for _, unit := range units {
			vals := make([]string, len(clients))
			measured := false
			for i, c := range clients {
				if v, ok := r.median(row.group, c, unit); ok {
					vals[i], measured = formatValue(v), true
				} else {
					vals[i] = "—"
				}
			}
			if !measured {
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", row.label, unit,
				vals[0], vals[1], vals[2], ratio(r, row.group, unit, "official"), ratio(r, row.group, unit, "floor"))
		}
	}
	printTargets(w, r)
}

func maxRuns(r results) int {
	n := 0
	for _, units := range r {
		for _, v := range units {
			n = max(n, len(v))
		}
	}
	return n
}

// cpuName prefers /proc/cpuinfo's model name, with go test's own name
// when they differ.
func cpuName(e env) string {
	model := ""
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	switch {
	case model == "":
		return e.cpu
	case e.cpu == "" || e.cpu == model:
		return model
	}
	return model + " (go test: " + e.cpu + ")"
}

func ratio(r results, group, unit, other string) string {
	a, ok1 := r.median(group, "this", unit)
	b, ok2 := r.median(group, other, unit)
	if !ok1 || !ok2 || b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func formatValue(v float64) string {
	if v >= 100 || v == float64(int64(v)) {
		return groupThousands(strconv.FormatFloat(v, 'f', 0, 64))
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func groupThousands(s string) string {
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	if pre > 0 {
		b.WriteString(s[:pre])
	}
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// target is one goal of the performance issue: this ≤ limit × other (or
// ≥ for calls/s).
type target struct {
	group, unit, other string
	limit              float64
	atLeast            bool
}

var targets = []target{
	{"DownloadSSLCert/canned", "ns/op", "official", 0.70, false},
	{"DownloadSSLCert/canned", "B/op", "official", 0.75, false},
	{"DownloadSSLCert/canned", "allocs/op", "official", 0.75, false},
	{"DownloadSSLCert/canned", "ns/op", "floor", 1.10, false},
	{"DownloadSSLCert/canned", "B/op", "floor", 1.10, false},
	{"DownloadSSLCert/canned", "allocs/op", "floor", 1.10, false},
	{"Concurrent", "calls/s", "official", 1.00, true},
}

func printTargets(w io.Writer, r results) {
	fmt.Fprintf(w, "\n| target | this/other (median) | met |\n|---|---:|---|\n")
	for _, t := range targets {
		a, ok1 := r.median(t.group, "this", t.unit)
		b, ok2 := r.median(t.group, t.other, t.unit)
		op := "≤"
		if t.atLeast {
			op = "≥"
		}
		name := fmt.Sprintf("%s %s: this %s %.2f × %s", t.group, t.unit, op, t.limit, t.other)
		if !ok1 || !ok2 || b == 0 {
			fmt.Fprintf(w, "| %s | — | not measured |\n", name)
			continue
		}
		q := a / b
		met := q <= t.limit
		if t.atLeast {
			met = q >= t.limit
		}
		verdict := "no"
		if met {
			verdict = "yes"
		}
		fmt.Fprintf(w, "| %s | %.3f | %s |\n", name, q, verdict)
	}
}
