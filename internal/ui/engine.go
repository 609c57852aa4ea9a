package ui

import (
	"bytes"
	"cmp"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"time"

	"kiln/internal/engine"
)

// EventsPath is where the engine page's live stream is served.
const EventsPath = "/events/ui"

// EnginePage is the read-only page of a running graph, for `kiln run
// --listen`: GET / is the page (every resource with its state, last check,
// last change and last error, and the graph drawn as SVG), GET /events/ui
// streams the same live part as server-sent events whenever a vertex's
// status changes. Mount it at "GET /{$}" and "GET "+EventsPath (a "GET /"
// pattern would conflict with the events receiver's method-less path).
//
// With kiln run --lock the view is the engine of the current lease, and a
// view with a LockStatus method has the page say who holds the lock.
func EnginePage(eng EngineView, graphName string) http.Handler {
	return &enginePage{eng: eng, name: graphName, t: parse("engine.html")}
}

// EnginePageWithOrphans is EnginePage with a section that names the
// graph's orphans (what carries its owner tag but it no longer lists),
// as orphans reports them, and whether prune will destroy each.
func EnginePageWithOrphans(eng EngineView, graphName string, orphans func() []Orphan) http.Handler {
	return &enginePage{eng: eng, name: graphName, t: parse("engine.html"), orphans: orphans}
}

// EnginePageWithAccounts is EnginePageWithOrphans (orphans may be nil)
// for a graph whose resources work in several AWS accounts: accounts
// returns the account of each resource (by id) that works in another
// account than the starting credentials', and the page shows it beside
// the resource.
func EnginePageWithAccounts(eng EngineView, graphName string, orphans func() []Orphan, accounts func() map[string]string) http.Handler {
	return &enginePage{eng: eng, name: graphName, t: parse("engine.html"), orphans: orphans, accounts: accounts}
}

// Orphan is one orphan of the graph, as the engine page shows it.
type Orphan struct {
	ID    string // kind/name
	Prune bool   // prune will destroy it
	Why   string // what happens to it, for people ("prune is off", a refusal)
}

// EngineView is what the engine page reads; *engine.Engine is one.
type EngineView interface {
	Status() []engine.VertexStatus
	Subscribe() (<-chan struct{}, func())
}

type enginePage struct {
	eng     EngineView
	name    string
	t       *template.Template
	orphans func() []Orphan // nil: no orphan section
	// accounts are the resources' accounts, by id (nil, or a resource not
	// in it: the starting credentials').
	accounts func() map[string]string
}

func (p *enginePage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/":
		_ = render(w, p.t, "engine", http.StatusOK, p.data())
	case EventsPath:
		p.events(w, r)
	default:
		http.NotFound(w, r)
	}
}

// engineData is what the engine templates read.
type engineData struct {
	Title   string
	Nav     bool
	CSRF    string
	Flash   string // read by the shared layout; the engine page has none
	Graph   string
	Events  string
	Now     time.Time
	Rows    []engine.VertexStatus
	Counts  []stateCount
	SVG     graphSVG
	Problem bool
	Lock    string // kiln run --lock: who holds the graph's lock
	Orphans []Orphan
	// Accounts are the accounts of the resources working in another
	// account than the starting credentials', by id.
	Accounts map[string]string
}

type stateCount struct {
	State engine.State
	N     int
}

func (p *enginePage) data() engineData {
	st := p.eng.Status()
	d := engineData{Title: "graph", Graph: p.name, Events: EventsPath, Now: time.Now(), Rows: st, SVG: layout(st)}
	if p.name != "" {
		d.Title = "graph " + p.name
	}
	if l, ok := p.eng.(interface{ LockStatus() string }); ok {
		d.Lock = l.LockStatus()
	}
	if p.orphans != nil {
		d.Orphans = p.orphans()
	}
	if p.accounts != nil {
		d.Accounts = p.accounts()
		for i, n := range d.SVG.Nodes {
			if a := d.Accounts[n.ID]; a != "" {
				d.SVG.Nodes[i].Account = a
			}
		}
	}
	n := map[engine.State]int{}
	for _, s := range st {
		n[s.State]++
		if s.State == engine.StateFailed || s.State == engine.StateBlocked {
			d.Problem = true
		}
	}
	for _, s := range []engine.State{engine.StateConverged, engine.StateChecking, engine.StateWaiting,
		engine.StatePending, engine.StateFailed, engine.StateBlocked} {
		if n[s] > 0 {
			d.Counts = append(d.Counts, stateCount{s, n[s]})
		}
	}
	return d
}

func (p *enginePage) events(w http.ResponseWriter, r *http.Request) {
	ch, cancel := p.eng.Subscribe()
	defer cancel()
	s := startSSE(w)
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	last := ""
	for {
		var buf bytes.Buffer
		if err := p.t.ExecuteTemplate(&buf, "engine-live", p.data()); err != nil {
			return
		}
		if html := buf.String(); html != last {
			if s.send("", html) != nil {
				return
			}
			last = html
		}
		select {
		case <-r.Context().Done():
			return
		case <-ch:
		case <-tick.C:
			if s.comment() != nil {
				return
			}
		}
	}
}

// Graph drawing: a layered layout computed from DependsOn. A vertex's
// layer is one more than the deepest of its dependencies; layers are
// columns, left to right, and each column keeps graph order.
const (
	nodeW, nodeH = 190, 40
	gapX, gapY   = 60, 16
	pad          = 12
)

type graphSVG struct {
	W, H  int
	Nodes []svgNode
	Edges []svgEdge
}

type svgNode struct {
	ID, Label, Kind string
	Account         string // another account than the starting one's
	State           engine.State
	X, Y            int
}

type svgEdge struct{ D string }

func layout(st []engine.VertexStatus) graphSVG {
	idx := make(map[string]int, len(st))
	for i, s := range st {
		idx[s.ID] = i
	}
	layer := make([]int, len(st))
	done := make([]bool, len(st))
	var depth func(i int, seen int) int
	depth = func(i, seen int) int {
		if done[i] || seen > len(st) { // seen bounds a cycle the engine would have refused
			return layer[i]
		}
		l := 0
		for _, d := range st[i].DependsOn {
			if j, ok := idx[d]; ok {
				l = max(l, depth(j, seen+1)+1)
			}
		}
		layer[i], done[i] = l, true
		return l
	}
	cols := map[int][]int{}
	maxLayer, maxRows := 0, 0
	for i := range st {
		l := depth(i, 0)
		cols[l] = append(cols[l], i)
		maxLayer = max(maxLayer, l)
		maxRows = max(maxRows, len(cols[l]))
	}
	g := graphSVG{
		W: 2*pad + (maxLayer+1)*nodeW + maxLayer*gapX,
		H: 2*pad + maxRows*nodeH + max(0, maxRows-1)*gapY,
	}
	if len(st) == 0 {
		g.W, g.H = 2*pad, 2*pad
	}
	pos := make([][2]int, len(st))
	for l := 0; l <= maxLayer; l++ {
		for row, i := range cols[l] {
			x, y := pad+l*(nodeW+gapX), pad+row*(nodeH+gapY)
			pos[i] = [2]int{x, y}
			s := st[i]
			g.Nodes = append(g.Nodes, svgNode{ID: s.ID, Label: clip(s.Name, 24), Kind: s.Kind, State: s.State, X: x, Y: y})
		}
	}
	for i, s := range st {
		for _, d := range s.DependsOn {
			j, ok := idx[d]
			if !ok {
				continue
			}
			x1, y1 := pos[j][0]+nodeW, pos[j][1]+nodeH/2
			x2, y2 := pos[i][0], pos[i][1]+nodeH/2
			mx := (x1 + x2) / 2
			g.Edges = append(g.Edges, svgEdge{D: fmt.Sprintf("M%d %d C%d %d %d %d %d %d", x1, y1, mx, y1, mx, y2, x2-2, y2)})
		}
	}
	slices.SortStableFunc(g.Nodes, func(a, b svgNode) int { return cmp.Compare(a.X, b.X) })
	return g
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// stateLabel names a state the way the page shows it.
func stateLabel(s engine.State) string {
	switch s {
	case engine.StateChecking:
		return "checking"
	case engine.StateWaiting:
		return "waiting on a dependency"
	case engine.StateBlocked:
		return "blocked"
	}
	return string(s)
}
