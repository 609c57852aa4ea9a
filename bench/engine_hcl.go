package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/hclgraph"
)

// The engine scenario's HCL cases: a graph written in HCL evaluated
// (parse, expand, check) and converged, all noops.
//
//	hcl-foreach/N  one resource block with for_each over a map of N keys
//	hcl-count/N    one resource block with count = N
//	hcl-reeval/N   N resources of which 10 read a file data source; the
//	               file changes, the graph is evaluated again and swapped:
//	               the time until the 10 are re-checked, and how many were.
var hclCases = []string{"hcl-foreach/10000", "hcl-count/100000", "hcl-reeval/10000"}

type hclFigures struct {
	Scenario         string  `json:"scenario"`
	Case             string  `json:"case"`
	Resources        int     `json:"resources"`
	EvalMS           float64 `json:"eval_ms"`     // hclgraph.Load: parse, evaluate, check
	EvalCPUMS        float64 `json:"eval_cpu_ms"` // user+sys CPU of the eval (robust on a busy machine)
	ConvergeMS       float64 `json:"converge_ms"` // Run with Once
	ConvergeCPUMS    float64 `json:"converge_cpu_ms"`
	TotalMS          float64 `json:"total_ms"`   // eval + converge
	ProcessMS        float64 `json:"process_ms"` // the case's whole process: from its start to its figures
	ProcessCPUMS     float64 `json:"process_cpu_ms"`
	PeakRSSMB        float64 `json:"peak_rss_mb"`
	RSSPerResourceKB float64 `json:"rss_per_resource_kb"`
	ReevalMS         float64 `json:"reeval_ms,omitempty"` // data change: evaluate, swap, until the affected are re-checked
	ReevalCPUMS      float64 `json:"reeval_cpu_ms,omitempty"`
	Rechecked        int64   `json:"rechecked,omitempty"` // checks after the swap
	Affected         int     `json:"affected,omitempty"`  // resources that read the data source
	GOMAXPROCS       int     `json:"gomaxprocs"`
}

// benchValue is benchStatic with one field, for resources that read a value.
type benchValue struct {
	benchStatic
	Value string `yaml:"value"`
}

// processStart is when the case's process started (package variables are
// set before init and main run): "whole process" figures count from it.
var processStart = time.Now()

func hclText(shape string, n int) string {
	var b strings.Builder
	b.WriteString("graph = \"bench\"\n")
	switch shape {
	case "hcl-foreach":
		// A map literal: cty's range() stops at 1024 values.
		b.WriteString("locals {\n  keys = {\n")
		for i := range n {
			fmt.Fprintf(&b, "    k%d = %d\n", i, i)
		}
		b.WriteString("  }\n}\n")
		b.WriteString("resource \"noop\" \"r\" {\n  for_each = local.keys\n}\n")
	case "hcl-count":
		fmt.Fprintf(&b, "resource \"noop\" \"r\" {\n  count = %d\n}\n", n)
	case "hcl-reeval":
		b.WriteString("data \"file\" \"base\" {\n  path = \"base.txt\"\n}\n")
		fmt.Fprintf(&b, "resource \"noop\" \"r\" {\n  count = %d\n}\n", n-10)
		b.WriteString("resource \"value\" \"v\" {\n  count = 10\n  value = \"${data.file.base.content}-${count.index}\"\n}\n")
	}
	return b.String()
}

func hclCase(ctx context.Context, name string) (*hclFigures, error) {
	shape, nstr, _ := strings.Cut(name, "/")
	n, err := strconv.Atoi(nstr)
	if err != nil {
		return nil, fmt.Errorf("case %q: %w", name, err)
	}
	dir, err := os.MkdirTemp("", "kiln-bench-hcl")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(hclText(shape, n)), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "base.txt"), []byte("ami-1"), 0o644); err != nil {
		return nil, err
	}
	var checks, last atomic.Int64
	// As kiln's own noop kind (resources.Noop), the resources are
	// engine.Static: nothing to watch, no Watch goroutine.
	kinds := config.Kinds{
		"noop": func() engine.Resource { return &benchStatic{benchNoop{checks: &checks, last: &last}} },
		"value": func() engine.Resource {
			return &benchValue{benchStatic: benchStatic{benchNoop{checks: &checks, last: &last}}}
		},
	}
	fig := &hclFigures{Scenario: "engine", Case: name, Resources: n, GOMAXPROCS: runtime.GOMAXPROCS(0)}
	runtime.GC()
	base := procStatus("VmRSS")
	t0, cpu0 := time.Now(), cpuTime()
	g, err := hclgraph.Load(dir, hclgraph.Options{Kinds: kinds})
	if err != nil {
		return nil, err
	}
	fig.EvalMS, fig.EvalCPUMS = ms(time.Since(t0)), ms(cpuTime()-cpu0)
	if shape != "hcl-reeval" {
		t1, cpu1 := time.Now(), cpuTime()
		if err := engine.New(g.Graph, engine.Options{Once: true}).Run(ctx); err != nil {
			return nil, fmt.Errorf("converge: %w", err)
		}
		fig.ConvergeMS, fig.ConvergeCPUMS = ms(time.Since(t1)), ms(cpuTime()-cpu1)
		fig.TotalMS = ms(time.Since(t0))
		fig.ProcessMS, fig.ProcessCPUMS = ms(time.Since(processStart)), ms(cpuTime())
		fig.PeakRSSMB = float64(procStatus("VmHWM")) / 1024
		fig.RSSPerResourceKB = float64(procStatus("VmHWM")-base) / float64(n)
		return fig, nil
	}
	// Re-evaluation: a running engine, then the data source's file changes.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := engine.New(g.Graph, engine.Options{})
	var rg sync.WaitGroup
	var runErr error
	rg.Go(func() { runErr = e.Run(runCtx) })
	for checks.Load() < int64(n) {
		time.Sleep(time.Millisecond)
	}
	fig.ConvergeMS = ms(time.Since(t0))
	fig.TotalMS = fig.ConvergeMS
	time.Sleep(100 * time.Millisecond) // settle
	before := checks.Load()
	if err := os.WriteFile(filepath.Join(dir, "base.txt"), []byte("ami-2"), 0o644); err != nil {
		return nil, err
	}
	t2, cpu2 := time.Now(), cpuTime()
	changed, err := g.Data[0].Changed(ctx, hclgraph.Options{Kinds: kinds})
	if err != nil || !changed {
		return nil, fmt.Errorf("data change not seen: %v %v", changed, err)
	}
	g2, err := hclgraph.Load(dir, hclgraph.Options{Kinds: kinds})
	if err != nil {
		return nil, err
	}
	e.Swap(g2.Graph)
	fig.Affected = 10
	for checks.Load() < before+int64(fig.Affected) {
		time.Sleep(100 * time.Microsecond)
	}
	fig.ReevalMS, fig.ReevalCPUMS = ms(time.Since(t2)), ms(cpuTime()-cpu2)
	time.Sleep(200 * time.Millisecond) // any further checks would show here
	fig.Rechecked = checks.Load() - before
	fig.ProcessMS, fig.ProcessCPUMS = ms(time.Since(processStart)), ms(cpuTime())
	fig.PeakRSSMB = float64(procStatus("VmHWM")) / 1024
	fig.RSSPerResourceKB = float64(procStatus("VmHWM")-base) / float64(n)
	cancel()
	rg.Wait()
	if runErr != nil && runErr != context.Canceled {
		return nil, fmt.Errorf("run: %w", runErr)
	}
	return fig, nil
}
