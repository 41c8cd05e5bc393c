package webshop

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Product is one item of the fake store: attributes the goal may ask for,
// options to choose (name → values) and a price in dollars.
type Product struct {
	ASIN       string
	Name       string
	Category   string
	Price      float64
	Attributes []string
	Options    map[string][]string
}

// Goal is what a session asks for: a product, the attributes and options the
// purchase should have, and a price ceiling.
type Goal struct {
	ASIN        string
	Attributes  []string
	Options     map[string]string
	PriceUpper  float64
	Instruction string
}

// TestSplit is the number of goals of WebShop's test split (goal indices
// 0..499), the goals MEM1 evaluates on.
const TestSplit = 500

// FakeServer is a small WebShop in AgentGym's protocol (see Client) over
// synthetic products: a search page, a results page (the ten best keyword
// matches), item pages with options, and Buy Now. Its reward is WebShop's
// formula without the product-type term: (attribute matches + option
// matches + [price ≤ ceiling]) / (goal attributes + goal options + 1), exact
// matches only (WebShop's type term needs spaCy and its matching is fuzzy;
// the formula is get_reward of princeton-nlp/WebShop,
// web_agent_site/engine/goal.py, Yao et al. 2022).
// Scores from it are therefore not comparable with the paper's. Safe for
// concurrent use.
type FakeServer struct {
	Products []Product
	Goals    []Goal

	mu   sync.Mutex
	envs map[int]*fakeEnv
	next int
}

type fakeEnv struct {
	goal    int
	page    string // "search", "results", "item", "detail", "done"
	query   string
	results []int
	item    int
	chosen  map[string]string
}

// NewFakeServer is a store of 36 products and 600 goals (the first 500 the
// test split), all generated deterministically.
func NewFakeServer() *FakeServer {
	cats := []struct {
		name  string
		attrs []string
		opts  map[string][]string
	}{
		{"running shoes", []string{"lightweight", "non-slip", "breathable"}, map[string][]string{"color": {"black", "white", "red"}, "size": {"8", "9", "10"}}},
		{"hoodie", []string{"machine washable", "fleece lined", "long sleeve"}, map[string][]string{"color": {"grey", "navy", "green"}, "size": {"small", "medium", "large"}}},
		{"face cream", []string{"fragrance free", "for sensitive skin", "vegan"}, map[string][]string{"size": {"1.7 oz", "3.4 oz"}}},
		{"phone case", []string{"shockproof", "wireless charging compatible", "slim"}, map[string][]string{"color": {"clear", "black", "blue"}}},
		{"coffee beans", []string{"organic", "dark roast", "fair trade"}, map[string][]string{"size": {"12 oz", "2 lb"}}},
		{"desk lamp", []string{"dimmable", "usb charging port", "eye-caring"}, map[string][]string{"color": {"white", "black"}}},
	}
	brands := []string{"Acme", "Nordic", "Velo", "Brightway", "Kestrel", "Lumen"}
	s := &FakeServer{envs: map[int]*fakeEnv{}}
	for ci, c := range cats {
		for bi, b := range brands {
			i := len(s.Products)
			attrs := []string{c.attrs[bi%3], c.attrs[(bi+1)%3]}
			s.Products = append(s.Products, Product{
				ASIN: fmt.Sprintf("B0%08d", 7301+i*37), Name: fmt.Sprintf("%s %s %s", b, strings.Join(attrs, " "), c.name),
				Category: c.name, Price: float64(12+ci*9+bi*4) + 0.99, Attributes: attrs, Options: c.opts,
			})
		}
	}
	for g := 0; g < 600; g++ {
		p := s.Products[(g*7)%len(s.Products)]
		goal := Goal{ASIN: p.ASIN, Attributes: p.Attributes[:1+g%2], Options: map[string]string{}, PriceUpper: math.Ceil(p.Price/10)*10 + 10}
		var parts []string
		for _, name := range sortedKeys(p.Options) {
			v := p.Options[name][(g/3)%len(p.Options[name])]
			goal.Options[name] = v
			parts = append(parts, name+": "+v)
		}
		goal.Instruction = fmt.Sprintf("i need %s %s, and %s, and price lower than %.2f dollars",
			strings.Join(goal.Attributes, " and "), p.Category, strings.Join(parts, ", and "), goal.PriceUpper)
		s.Goals = append(s.Goals, goal)
	}
	return s
}

func sortedKeys(m map[string][]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Expire forgets environment idx, as a restarted server would; later
// requests naming it get 404 {"error": "env_idx … not found"}.
func (s *FakeServer) Expire(idx int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.envs, idx)
}

// Reward is the fake's reward for buying product p with options chosen
// under goal g (see FakeServer).
func Reward(g Goal, p Product, chosen map[string]string) float64 {
	n := 0.0
	for _, a := range g.Attributes {
		for _, pa := range p.Attributes {
			if a == pa {
				n++
				break
			}
		}
	}
	for name, v := range g.Options {
		if chosen[name] == v {
			n++
		}
	}
	if p.Price <= g.PriceUpper {
		n++
	}
	return n / float64(len(g.Attributes)+len(g.Options)+1)
}

func (s *FakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	var body struct {
		EnvIdx    *int   `json:"env_idx"`
		SessionID *int   `json:"session_id"`
		Action    string `json:"action"`
	}
	if r.Method == http.MethodPost {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil && r.URL.Path != "/create" {
			reply(http.StatusUnprocessableEntity, map[string]string{"error": "body: " + err.Error()})
			return
		}
	} else if v := r.URL.Query().Get("env_idx"); v != "" {
		if i, err := strconv.Atoi(v); err == nil {
			body.EnvIdx = &i
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.URL.Path == "/create" {
		if r.Method != http.MethodPost {
			reply(http.StatusMethodNotAllowed, map[string]string{"error": "POST /create"})
			return
		}
		idx := s.next
		s.next++
		s.envs[idx] = &fakeEnv{goal: 0, page: "search", chosen: map[string]string{}}
		reply(http.StatusOK, idx)
		return
	}
	if body.EnvIdx == nil {
		reply(http.StatusUnprocessableEntity, map[string]string{"error": "env_idx is required"})
		return
	}
	e, ok := s.envs[*body.EnvIdx]
	if !ok {
		reply(http.StatusNotFound, map[string]string{"error": fmt.Sprintf("env_idx %d not found", *body.EnvIdx)})
		return
	}
	switch r.Method + " " + r.URL.Path {
	case "POST /reset":
		g := 0
		if body.SessionID != nil {
			g = *body.SessionID
		}
		if g < 0 || g >= len(s.Goals) {
			reply(http.StatusOK, map[string]string{"error": fmt.Sprintf("session_id %d: want 0..%d", g, len(s.Goals)-1)})
			return
		}
		*e = fakeEnv{goal: g, page: "search", chosen: map[string]string{}}
		reply(http.StatusOK, s.text(e))
	case "POST /step":
		reward, done := s.step(e, body.Action)
		reply(http.StatusOK, map[string]any{"state": s.text(e), "reward": reward, "done": done, "info": nil})
	case "GET /available_actions":
		reply(http.StatusOK, s.actions(e))
	case "GET /observation":
		reply(http.StatusOK, s.text(e))
	case "GET /instruction_text":
		reply(http.StatusOK, s.Goals[e.goal].Instruction)
	case "POST /close":
		delete(s.envs, *body.EnvIdx)
		reply(http.StatusOK, map[string]string{"closed": strconv.Itoa(*body.EnvIdx)})
	default:
		reply(http.StatusNotFound, map[string]string{"detail": "Not Found"})
	}
}

func (s *FakeServer) actions(e *fakeEnv) map[string]any {
	var cl []string
	switch e.page {
	case "search":
		return map[string]any{"has_search_bar": true, "clickables": []string{"search"}}
	case "results":
		cl = append(cl, "back to search")
		for _, i := range e.results {
			cl = append(cl, strings.ToLower(s.Products[i].ASIN))
		}
	case "item":
		cl = append(cl, "back to search", "< prev")
		p := s.Products[e.item]
		for _, name := range sortedKeys(p.Options) {
			cl = append(cl, p.Options[name]...)
		}
		cl = append(cl, "description", "features", "reviews", "buy now")
	case "detail":
		cl = []string{"back to search", "< prev"}
	}
	return map[string]any{"has_search_bar": false, "clickables": cl}
}

// step applies one action; an action the page does not offer leaves it as
// it is (WebShop's behaviour), with reward 0.
func (s *FakeServer) step(e *fakeEnv, action string) (float64, bool) {
	action = strings.TrimSpace(action)
	low := strings.ToLower(action)
	switch {
	case e.page == "done":
	case strings.HasPrefix(low, "search[") && strings.HasSuffix(low, "]") && e.page == "search":
		e.query = action[len("search[") : len(action)-1]
		e.results = s.search(e.query)
		e.page = "results"
	case strings.HasPrefix(low, "click[") && strings.HasSuffix(low, "]"):
		arg := strings.TrimSpace(low[len("click[") : len(low)-1])
		switch {
		case arg == "back to search" && e.page != "search":
			e.page, e.chosen = "search", map[string]string{}
		case arg == "< prev" && e.page == "item":
			e.page = "results"
		case arg == "< prev" && e.page == "detail":
			e.page = "item"
		case e.page == "results":
			for _, i := range e.results {
				if strings.ToLower(s.Products[i].ASIN) == arg {
					e.page, e.item, e.chosen = "item", i, map[string]string{}
				}
			}
		case e.page == "item" && (arg == "description" || arg == "features" || arg == "reviews"):
			e.page = "detail"
		case e.page == "item" && arg == "buy now":
			e.page = "done"
			return Reward(s.Goals[e.goal], s.Products[e.item], e.chosen), true
		case e.page == "item":
			p := s.Products[e.item]
			for name, vs := range p.Options {
				for _, v := range vs {
					if v == arg {
						e.chosen[name] = v
					}
				}
			}
		}
	}
	return 0, false
}

// search ranks products by how many query words their name and category
// share (ties: catalogue order) and keeps the best ten with any match.
func (s *FakeServer) search(q string) []int {
	words := strings.Fields(strings.ToLower(q))
	type hit struct{ i, n int }
	var hits []hit
	for i, p := range s.Products {
		text := " " + strings.ToLower(p.Name+" "+p.Category) + " "
		n := 0
		for _, w := range words {
			if strings.Contains(text, " "+w+" ") {
				n++
			}
		}
		if n > 0 {
			hits = append(hits, hit{i, n})
		}
	}
	sort.SliceStable(hits, func(a, b int) bool { return hits[a].n > hits[b].n })
	var out []int
	for _, h := range hits[:min(len(hits), 10)] {
		out = append(out, h.i)
	}
	return out
}

// text renders the page as WebShop's text mode does: fields joined by
// " [SEP] ".
func (s *FakeServer) text(e *fakeEnv) string {
	g := s.Goals[e.goal]
	f := []string{"WebShop", "Instruction:", g.Instruction}
	switch e.page {
	case "search":
		f = append(f, "Search")
	case "results":
		f = append(f, "Back to Search", fmt.Sprintf("Page 1 (Total results: %d)", len(e.results)))
		for _, i := range e.results {
			p := s.Products[i]
			f = append(f, p.ASIN, p.Name, fmt.Sprintf("$%.2f", p.Price))
		}
	case "item", "detail":
		p := s.Products[e.item]
		f = append(f, "Back to Search", "< Prev")
		if e.page == "detail" {
			f = append(f, p.Name, "Features: "+strings.Join(p.Attributes, "; "))
			break
		}
		for _, name := range sortedKeys(p.Options) {
			f = append(f, name)
			f = append(f, p.Options[name]...)
		}
		f = append(f, p.Name, fmt.Sprintf("Price: $%.2f", p.Price), "Rating: N.A.", "Description", "Features", "Reviews", "Buy Now")
	case "done":
		p := s.Products[e.item]
		var opts []string
		for _, k := range sortedKeys(p.Options) {
			if v, ok := e.chosen[k]; ok {
				opts = append(opts, k+": "+v)
			}
		}
		f = []string{"Thank you for shopping with us!", "Purchased", p.ASIN, p.Name, "Options: " + strings.Join(opts, ", "),
			fmt.Sprintf("Reward: %.4f (mem1lab fake WebShop: no product-type term)", Reward(g, p, e.chosen))}
	}
	return strings.Join(f, " [SEP] ")
}
