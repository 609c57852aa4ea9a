package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"kiln/internal/cli"
)

// The engine scenario's files cases: a graph of N file resources, in one
// folder or spread over folders of 100, converged by a whole kiln process
// (this binary re-executed as kiln: `kiln run --once graph.yaml`), timed
// from exec to exit. Each case runs twice: on an empty tree (every file
// written) and again on the converged tree (every file only checked).
// Every file resource watches its file, through one shared watcher, so a
// case also shows whether N watches fit the default inotify limits.
//
//	KILN_BENCH_ENGINE_FILES=1000,10000   picks the sizes
const (
	filesKilnEnv  = "KILN_BENCH_FILES_KILN"
	filesSizesEnv = "KILN_BENCH_ENGINE_FILES"
	filesPerDir   = 100 // the "many" layout
)

// init makes this binary kiln itself when a files case re-executes it.
func init() {
	if os.Getenv(filesKilnEnv) == "" {
		return
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}

type filesFigures struct {
	Scenario       string  `json:"scenario"`
	Case           string  `json:"case"`
	Resources      int     `json:"resources"`
	Dirs           int     `json:"dirs"`
	ConvergeMS     float64 `json:"converge_ms"`     // exec to exit, every file written
	ConvergeCPUMS  float64 `json:"converge_cpu_ms"` // user+sys CPU of that process
	RecheckMS      float64 `json:"recheck_ms"`      // exec to exit again, every file already right
	RecheckCPUMS   float64 `json:"recheck_cpu_ms"`
	PeakRSSMB      float64 `json:"peak_rss_mb"`
	MaxInstances   int     `json:"max_user_instances"` // fs.inotify.max_user_instances of the machine
	MaxWatches     int     `json:"max_user_watches"`
	ConvergeErrors string  `json:"error,omitempty"`
}

func filesCases(ctx context.Context, emit func(v any)) error {
	sizes := []int{1000, 10000}
	if s := os.Getenv(filesSizesEnv); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				return fmt.Errorf("parse %s: %w", filesSizesEnv, err)
			}
			sizes = append(sizes, n)
		}
	}
	for _, layout := range []string{"one-dir", "many-dirs"} {
		for _, n := range sizes {
			name := fmt.Sprintf("files/%s/%d", layout, n)
			fmt.Fprintf(os.Stderr, "bench: engine %s\n", name)
			fig, err := filesCase(ctx, name, layout, n)
			if err != nil {
				return fmt.Errorf("case %s: %w", name, err)
			}
			emit(fig)
		}
	}
	return nil
}

func filesCase(ctx context.Context, name, layout string, n int) (*filesFigures, error) {
	dir, err := os.MkdirTemp("", "kiln-bench-files-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	fig := &filesFigures{Scenario: "engine", Case: name, Resources: n,
		MaxInstances: readInt("/proc/sys/fs/inotify/max_user_instances"),
		MaxWatches:   readInt("/proc/sys/fs/inotify/max_user_watches")}
	var b bytes.Buffer
	b.WriteString("name: files\nresources:\n")
	dirs := map[string]bool{}
	for i := range n {
		d := "out"
		if layout == "many-dirs" {
			d = fmt.Sprintf("out/d%d", i/filesPerDir)
		}
		dirs[d] = true
		fmt.Fprintf(&b, "  - {kind: file, name: f%d, path: %s/f%d.txt, content: \"file %d\\n\"}\n", i, d, i, i)
	}
	fig.Dirs = len(dirs)
	graph := filepath.Join(dir, "graph.yaml")
	if err := os.WriteFile(graph, b.Bytes(), 0o644); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	run := func() (wall, cpu time.Duration, rss int64, err error) {
		cmd := exec.CommandContext(ctx, self, "run", "--once", "graph.yaml")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), filesKilnEnv+"=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		t0 := time.Now()
		err = cmd.Run()
		wall = time.Since(t0)
		if cmd.ProcessState != nil {
			cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
				rss = ru.Maxrss
			}
		}
		if err != nil {
			err = fmt.Errorf("kiln run --once: %w: %s", err, lastLines(stderr.String(), 3))
		}
		return wall, cpu, rss, err
	}
	wall, cpu, rss, err := run()
	fig.ConvergeMS, fig.ConvergeCPUMS, fig.PeakRSSMB = ms(wall), ms(cpu), float64(rss)/1024
	if err != nil {
		fig.ConvergeErrors = err.Error()
		return fig, nil
	}
	wall, cpu, rss, err = run()
	fig.RecheckMS, fig.RecheckCPUMS = ms(wall), ms(cpu)
	fig.PeakRSSMB = max(fig.PeakRSSMB, float64(rss)/1024)
	if err != nil {
		fig.ConvergeErrors = err.Error()
	}
	return fig, nil
}

func readInt(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return n
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
