package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"golang.org/x/perf/benchfmt"
)

// benchGoal is a figure the engine is held to: the run that prints it (the JSON file's name
// without .json), the figure's key in that run's flattened JSON, and the bound.
type benchGoal struct {
	run, key string
	atLeast  bool // the figure must be >= bound; otherwise <= bound
	bound    float64
}

// benchGoals are the goals the performance and scale-out issues set, beside the figures `make
// bench` measures. A figure without a goal is printed without a verdict.
var benchGoals = []benchGoal{
	{"loadtest", "ratio_to_ceiling", true, 0.40},
	{"loadtest", "latency_p99_ms", false, 100},
	{"loadtest-prefilled", "ratio_to_ceiling", true, 0.40},
	{"loadtest-prefilled", "latency_p99_ms", false, 100},
	{"loadtest-settle", "settle_seconds", false, 60},
	{"loadtest-settle", "settle_peak_rss_mib", false, 500},
	{"loadtest-transfers", "phases[uniform].transfers_per_second", true, 10_000},
	{"loadtest-transfers", "phases[hot].transfers_per_second", true, 10_000},
	{"loadtest-transfers-batched", "phases[uniform].transfers_per_second", true, 10_000},
	{"loadtest-transfers-batched", "phases[hot].transfers_per_second", true, 10_000},
	{"loadtest-cityday", "lost", false, 0},
	{"loadtest-cityday", "applied_twice", false, 0},
	{"loadtest-cityday", "mismatched", false, 0},
	{"loadtest-cityday", "unexpected", false, 0},
	{"loadtest-auth", "open.p99_ms", false, 5},
	{"loadtest-auth-prefilled", "open.p99_ms", false, 5},
	{"loadtest-auth-prefilled", "closed.requests_per_second", true, 5_000},
	{"loadtest-auth-prefilled", "closed.p99_ms", false, 10},
	{"loadtest-taps", "kafka_to_http", true, 1},
	{"loadtest-million-cards", "engine_peak_rss_mib", false, 1024},
}

// benchRatio is a figure derived from two runs: one run's figure over a baseline run's.
type benchRatio struct {
	name          string
	run, baseline string
	key           string
	atLeast       bool
	bound         float64
}

// benchRatios hold size and contention to account: figures on tables pre-filled with ten million
// earlier rows stay within 10% of the empty-table figures, and a city whose every purchase
// credits one merchant's account runs at 95% of one that spreads them over 500.
var benchRatios = []benchRatio{
	{"events/s one hot merchant over 500", "loadtest-hot", "loadtest", "events_per_second", true, 0.95},
	{"events/s pre-filled over empty", "loadtest-prefilled", "loadtest", "events_per_second", true, 0.90},
	{"latency p99 pre-filled over empty", "loadtest-prefilled", "loadtest", "latency_p99_ms", false, 1.10},
	{"authorizations/s pre-filled over empty", "loadtest-auth-prefilled", "loadtest-auth", "closed.requests_per_second", true, 0.90},
	{"authorization p99 pre-filled over empty", "loadtest-auth-prefilled", "loadtest-auth", "open.p99_ms", false, 1.10},
}

// runBenchReport prints one table of every figure `make bench` wrote into a directory: each
// load run's JSON (flattened, with its goal and whether it is met) and the medians of the Go
// benchmarks' output.
func runBenchReport(_ context.Context, args []string, stdout io.Writer) error {
	fs, _ := newFlagSet("bench-report", "print one table of the figures `make bench` wrote into a directory, with their goals, and the Go benchmarks' medians")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("bench-report takes one directory, got %d arguments", fs.NArg())
	}
	return writeBenchReport(fs.Arg(0), stdout)
}

func writeBenchReport(dir string, stdout io.Writer) error {
	// A directory that is not there would list no runs and print an empty table, as if the runs
	// had written nothing.
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("bench directory: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("bench directory %s: not a directory", dir)
	}
	runs, err := readBenchRuns(dir)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\tfigure\tvalue\tgoal\tmet\t")
	names := make([]string, 0, len(runs))
	for name := range runs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, run := range names {
		figs := runs[run]
		keys := make([]string, 0, len(figs))
		for k := range figs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			goal, met := "", ""
			for _, g := range benchGoals {
				if g.run == run && g.key == k {
					goal, met = goalText(g.atLeast, g.bound), metText(g.atLeast, g.bound, figs[k])
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", run, k, figureText(figs[k]), goal, met)
		}
	}
	for _, r := range benchRatios {
		a, okA := runs[r.run][r.key]
		b, okB := runs[r.baseline][r.key]
		if !okA || !okB || b == 0 {
			continue
		}
		v := a / b
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", r.run+"/"+r.baseline, r.name, figureText(v),
			goalText(r.atLeast, r.bound), metText(r.atLeast, r.bound, v))
	}
	medians, err := readGoBenchMedians(dir)
	if err != nil {
		return err
	}
	for _, m := range medians {
		fmt.Fprintf(tw, "go test -bench\t%s\t%s %s\t\t\t\n", m.name, figureText(m.median), m.unit)
	}
	return tw.Flush()
}

func goalText(atLeast bool, bound float64) string {
	if atLeast {
		return ">= " + figureText(bound)
	}
	return "<= " + figureText(bound)
}

func metText(atLeast bool, bound, v float64) string {
	if (atLeast && v >= bound) || (!atLeast && v <= bound) {
		return "yes"
	}
	return "NO"
}

// figureText prints a figure with thousands separators and at most three significant decimals.
func figureText(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return groupThousands(strconv.FormatInt(int64(v), 10))
	}
	if math.Abs(v) >= 100 {
		return groupThousands(strconv.FormatFloat(v, 'f', 0, 64))
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func groupThousands(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// readBenchRuns reads every DIR/*.json as one run's figures: numbers and booleans (true is 1),
// flattened by path; an array of objects with a "name" is keyed by that name.
func readBenchRuns(dir string) (map[string]map[string]float64, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("list bench runs: %w", err)
	}
	runs := map[string]map[string]float64{}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read bench run: %w", err)
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("bench run %s is not one JSON object: %w", filepath.Base(p), err)
		}
		figs := map[string]float64{}
		flattenFigures("", v, figs)
		runs[strings.TrimSuffix(filepath.Base(p), ".json")] = figs
	}
	return runs, nil
}

func flattenFigures(prefix string, v any, out map[string]float64) {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch v := v.(type) {
	case float64:
		out[prefix] = v
	case bool:
		if v {
			out[prefix] = 1
		} else {
			out[prefix] = 0
		}
	case map[string]any:
		for k, x := range v {
			flattenFigures(join(k), x, out)
		}
	case []any:
		// Only arrays of objects are figures (phases, steps); an array of numbers is a pair
		// such as expected and actual, whose verdict the run prints as a figure of its own.
		for i, x := range v {
			m, ok := x.(map[string]any)
			if !ok {
				continue
			}
			key := prefix + "[" + strconv.Itoa(i) + "]"
			if name, ok := m["name"].(string); ok {
				key = prefix + "[" + name + "]"
			}
			flattenFigures(key, m, out)
		}
	}
}

type benchMedian struct {
	name, unit string
	median     float64
}

// readGoBenchMedians reads every DIR/*.txt as `go test -bench` output and returns each
// benchmark's median per unit, over its -count runs.
func readGoBenchMedians(dir string) ([]benchMedian, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	if err != nil {
		return nil, fmt.Errorf("list go benchmark outputs: %w", err)
	}
	type key struct{ name, unit string }
	samples := map[key][]float64{}
	var order []key
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("read go benchmark output: %w", err)
		}
		r := benchfmt.NewReader(f, filepath.Base(p))
		for r.Scan() {
			res, ok := r.Result().(*benchfmt.Result)
			if !ok {
				continue
			}
			pkg := res.GetConfig("pkg")
			name := string(res.Name.Full())
			if pkg != "" {
				name = pkg[strings.LastIndex(pkg, "/")+1:] + "." + name
			}
			for _, v := range res.Values {
				unit, val := v.Unit, v.Value
				if v.OrigUnit != "" {
					unit, val = v.OrigUnit, v.OrigValue
				}
				k := key{name, unit}
				if _, seen := samples[k]; !seen {
					order = append(order, k)
				}
				samples[k] = append(samples[k], val)
			}
		}
		err = r.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read go benchmark output %s: %w", filepath.Base(p), err)
		}
	}
	out := make([]benchMedian, 0, len(order))
	for _, k := range order {
		s := samples[k]
		slices.Sort(s)
		m := s[len(s)/2]
		if len(s)%2 == 0 {
			m = (s[len(s)/2-1] + s[len(s)/2]) / 2
		}
		out = append(out, benchMedian{k.name, k.unit, m})
	}
	return out, nil
}
