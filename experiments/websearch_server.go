package experiments

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"

	"github.com/mem1lab/mem1lab/core"
)

// SerperServer answers Serper's search request shape over a local search
// environment, for trying the web-QA path without the internet:
//
//	POST /search  X-API-KEY: Key  {"q": query, "num": k}
//	→ {"searchParameters": {"q","num"}, "organic": [{"title","snippet","link","position"}, …]}
//
// Each hit is a passage of Env (title, text as the snippet, "passage:ID" as
// the link). There is no answerBox. A wrong or missing key is a 401, a
// request that is not that shape a 400 (num 0 means 10, as Serper's default),
// a search failure a 502.
type SerperServer struct {
	Env core.Environment
	// Key is the API key requests must send; "" accepts any.
	Key string
}

func (s *SerperServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	if r.URL.Path != "/search" || r.Method != http.MethodPost {
		reply(http.StatusNotFound, map[string]any{"message": "POST /search", "statusCode": 404})
		return
	}
	if s.Key != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("X-API-KEY")), []byte(s.Key)) != 1 {
		reply(http.StatusUnauthorized, map[string]any{"message": "Unauthorized.", "statusCode": 401})
		return
	}
	var body struct {
		Q   *string `json:"q"`
		Num int     `json:"num"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil || body.Q == nil || body.Num < 0 || body.Num > 100 {
		reply(http.StatusBadRequest, map[string]any{"message": `want {"q": query, "num": 1..100}`, "statusCode": 400})
		return
	}
	if body.Num == 0 {
		body.Num = 10
	}
	ps, err := s.Env.Search(r.Context(), *body.Q, body.Num)
	if err != nil {
		reply(http.StatusBadGateway, map[string]any{"message": err.Error(), "statusCode": 502})
		return
	}
	organic := make([]map[string]any, 0, len(ps))
	for i, p := range ps {
		organic = append(organic, map[string]any{"title": p.Title, "snippet": p.Text, "link": "passage:" + p.ID, "position": i + 1})
	}
	reply(http.StatusOK, map[string]any{"searchParameters": map[string]any{"q": *body.Q, "num": body.Num, "type": "search"}, "organic": organic})
}
