// Command bench runs kiln's benchmark scenarios. Each scenario prints one JSON
// line of figures per case on stdout; progress goes to stderr.
//
//	go run ./bench            # every scenario
//	go run ./bench engine     # one scenario
//	go run ./bench -list      # the scenario names
//
// Benchmarks report numbers; they assert nothing. Targets live in
// docs/benchmarks.md and in the closing notes of the issues that set them.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"sort"
)

// A scenario runs its cases and calls emit once per case with a JSON-encodable
// value of figures (a struct or map with a "scenario" and "case" field).
type scenario func(ctx context.Context, emit func(v any)) error

// scenarios lists every benchmark: one line per scenario, the function in a
// file of its own.
var scenarios = map[string]scenario{
	"bake":         bakeBench,
	"engine":       engineBench,
	"environments": environmentsBench,
	"awssim":       awssimBench,
	"ec2":          ec2Bench,
	"dns":          dnsBench,
	"rollout":      rolloutBench,
	"pages":        pagesBench,
	"lock":         lockBench,
	"queue":        queueBench,
	"distribute":   distributeBench,
	"cluster":      clusterBench,
	"soak":         soakBench,
	"estate":       estateBench,
}

func main() { os.Exit(run()) }

func run() int {
	list := flag.Bool("list", false, "print the scenario names and exit")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to `file` (go tool pprof)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: go run ./bench [-list] [scenario ...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	var names []string
	for n := range scenarios {
		names = append(names, n)
	}
	sort.Strings(names)
	if *list {
		for _, n := range names {
			fmt.Println(n)
		}
		return 0
	}
	if flag.NArg() > 0 {
		for _, n := range flag.Args() {
			if !slices.Contains(names, n) {
				fmt.Fprintf(os.Stderr, "bench: unknown scenario %q (have %v)\n", n, names)
				return 2
			}
		}
		names = flag.Args()
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	enc := json.NewEncoder(os.Stdout)
	emit := func(v any) {
		if err := enc.Encode(v); err != nil {
			fmt.Fprintf(os.Stderr, "bench: encode: %v\n", err)
		}
	}
	code := 0
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "bench: %s\n", n)
		if err := scenarios[n](ctx, emit); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", n, err)
			code = 1
		}
	}
	return code
}
