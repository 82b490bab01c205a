package quotes

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	. "github.com/smartystreets/goconvey/convey"
)

func TestParseStrength(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"", 0, false}, {"0", 0, false}, {"4", 4, false}, {"10", 10, false},
		{"11", 0, true}, {"-1", 0, true}, {"x", 0, true}, {"99999999999999999999", 0, true}, {"4.5", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseStrength(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseStrength(%q) = %d, %v; want %d, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestWorkDoubles(t *testing.T) {
	for s := 2; s <= MaxStrength; s++ {
		if Work(s) != 2*Work(s-1) {
			t.Fatalf("Work(%d) = %d, want twice Work(%d) = %d", s, Work(s), s-1, Work(s-1))
		}
	}
	if Work(0) != 0 || Work(MaxStrength) > 1<<MaxStrength {
		t.Fatal("work is unbounded")
	}
}

func TestQuoteHandler(t *testing.T) {
	Convey("Given the quote handler", t, func() {
		h := NewHandler("quotes-1/10.0.1.5:8080")
		serve := func(method, url string) *httptest.ResponseRecorder {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(method, url, nil))
			return rec
		}

		Convey("a quote at strength 4 names this instance", func() {
			rec := serve("GET", "/api/quote?strength=4")
			So(rec.Code, ShouldEqual, http.StatusOK)
			So(rec.Header().Get("Content-Type"), ShouldEqual, "application/json")
			var q Quote
			So(json.Unmarshal(rec.Body.Bytes(), &q), ShouldBeNil)
			So(q.IPAddress, ShouldEqual, "quotes-1/10.0.1.5:8080")
			So(q.Language, ShouldEqual, "en")
			So(q.Text, ShouldNotBeEmpty)
		})
		Convey("a strength out of range is a 400 with a JSON body", func() {
			rec := serve("GET", "/api/quote?strength=11")
			So(rec.Code, ShouldEqual, http.StatusBadRequest)
			So(rec.Body.String(), ShouldContainSubstring, `"error"`)
		})
		Convey("health is UP", func() {
			rec := serve("GET", "/health")
			So(rec.Code, ShouldEqual, http.StatusOK)
			So(rec.Body.String(), ShouldContainSubstring, `"UP"`)
		})
		Convey("unknown paths are JSON 404s", func() {
			rec := serve("GET", "/nope")
			So(rec.Code, ShouldEqual, http.StatusNotFound)
			So(rec.Header().Get("Content-Type"), ShouldEqual, "application/json")
		})
	})
}

func BenchmarkBurn(b *testing.B) {
	for _, s := range []int{0, 4, 10} {
		b.Run(fmt.Sprintf("strength=%d", s), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				Burn(s)
			}
		})
	}
}
