package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/h2non/gock"
	. "github.com/smartystreets/goconvey/convey"

	"github.com/goblog/goblog/accountservice/internal/quote"
	"github.com/goblog/goblog/accountservice/internal/store"
)

const quotesURL = "http://quotes-service:8080"

func newQuoteClient(t *testing.T) *quote.Client {
	c, err := quote.NewClient(quotesURL, 4, 200*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	gock.InterceptClient(c.HTTP)
	return c
}

func TestAccountAPI(t *testing.T) {
	defer gock.Off()
	Convey("Given accountservice with a seeded store", t, func() {
		st, err := store.Open(filepath.Join(t.TempDir(), "accounts.db"))
		So(err, ShouldBeNil)
		Reset(func() { st.Close(); gock.Off() })
		api := New(Config{Store: st, Quotes: newQuoteClient(t), ServedBy: "10.0.1.7", Testability: true})
		serve := func(method, url string) *httptest.ResponseRecorder {
			rec := httptest.NewRecorder()
			api.ServeHTTP(rec, httptest.NewRequest(method, url, nil))
			return rec
		}
		decode := func(rec *httptest.ResponseRecorder) Account {
			var a Account
			So(json.Unmarshal(rec.Body.Bytes(), &a), ShouldBeNil)
			return a
		}

		Convey("When quotes-service answers", func() {
			gock.New(quotesURL).Get("/api/quote").MatchParam("strength", "4").
				Reply(200).JSON(map[string]string{"quote": "Clear is better than clever.", "ipAddress": "q1/10.0.1.9:8080", "language": "en"})
			rec := serve("GET", "/accounts/10000")
			Convey("the account comes with its quote and this task's address", func() {
				So(rec.Code, ShouldEqual, http.StatusOK)
				So(rec.Header().Get("Content-Type"), ShouldEqual, "application/json")
				a := decode(rec)
				So(a.ID, ShouldEqual, "10000")
				So(a.Name, ShouldEqual, "Person_0")
				So(a.ServedBy, ShouldEqual, "10.0.1.7")
				So(a.Quote.IPAddress, ShouldEqual, "q1/10.0.1.9:8080")
				So(gock.IsDone(), ShouldBeTrue)
			})
		})
		Convey("When quotes-service answers 500", func() {
			gock.New(quotesURL).Get("/api/quote").Reply(500)
			rec := serve("GET", "/accounts/10001")
			Convey("the answer is still 200 with the fallback quote", func() {
				So(rec.Code, ShouldEqual, http.StatusOK)
				a := decode(rec)
				So(a.Name, ShouldEqual, "Person_1")
				So(a.Quote, ShouldResemble, quote.Fallback)
			})
		})
		Convey("When quotes-service is slower than the deadline", func() {
			gock.New(quotesURL).Get("/api/quote").Reply(200).Delay(5 * time.Second).
				JSON(map[string]string{"quote": "late", "ipAddress": "q1", "language": "en"})
			start := time.Now()
			rec := serve("GET", "/accounts/10002")
			Convey("the fallback is served within the quote timeout", func() {
				So(rec.Code, ShouldEqual, http.StatusOK)
				So(decode(rec).Quote, ShouldResemble, quote.Fallback)
				So(time.Since(start), ShouldBeLessThan, 3*time.Second)
			})
		})
		Convey("When quotes-service answers garbage", func() {
			gock.New(quotesURL).Get("/api/quote").Reply(200).BodyString("<html>not json")
			So(decode(serve("GET", "/accounts/10003")).Quote, ShouldResemble, quote.Fallback)
		})
		Convey("An unknown account is a JSON 404", func() {
			rec := serve("GET", "/accounts/10100")
			So(rec.Code, ShouldEqual, http.StatusNotFound)
			So(rec.Header().Get("Content-Type"), ShouldEqual, "application/json")
			So(rec.Body.String(), ShouldContainSubstring, `"error"`)
		})
		Convey("A malformed or absurd id is a JSON 400", func() {
			for _, id := range []string{"abc", "10000x", "-1", "12345678901234567890123", "1%2000"} {
				rec := serve("GET", "/accounts/"+id)
				So(rec.Code, ShouldEqual, http.StatusBadRequest)
				So(rec.Body.String(), ShouldContainSubstring, `"error"`)
			}
		})
		Convey("Health is UP while the store works", func() {
			So(serve("GET", "/health").Code, ShouldEqual, http.StatusOK)
		})
		Convey("Health is 503 with a reason once the store is closed", func() {
			st.Close()
			rec := serve("GET", "/health")
			So(rec.Code, ShouldEqual, http.StatusServiceUnavailable)
			So(rec.Body.String(), ShouldContainSubstring, "store")
			Convey("and reading an account is a 503, not a 404", func() {
				So(serve("GET", "/accounts/10000").Code, ShouldEqual, http.StatusServiceUnavailable)
			})
		})
		Convey("The testability switch", func() {
			rec := serve("PUT", "/testability/healthy/false")
			So(rec.Code, ShouldEqual, http.StatusOK)
			So(rec.Body.String(), ShouldContainSubstring, `"servedBy":"10.0.1.7"`)
			So(serve("GET", "/health").Code, ShouldEqual, http.StatusServiceUnavailable)
			So(serve("PUT", "/testability/healthy/true").Code, ShouldEqual, http.StatusOK)
			So(serve("GET", "/health").Code, ShouldEqual, http.StatusOK)
			So(serve("PUT", "/testability/healthy/maybe").Code, ShouldEqual, http.StatusBadRequest)
			So(serve("GET", "/testability/healthy/false").Code, ShouldEqual, http.StatusMethodNotAllowed)
		})
	})
}

func TestTestabilityOffByDefault(t *testing.T) {
	Convey("Without testability the switch does not exist", t, func() {
		st, err := store.Open(filepath.Join(t.TempDir(), "accounts.db"))
		So(err, ShouldBeNil)
		defer st.Close()
		api := New(Config{Store: st, Quotes: newQuoteClient(t), ServedBy: "10.0.1.7"})
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, httptest.NewRequest("PUT", "/testability/healthy/false", nil))
		So(rec.Code, ShouldEqual, http.StatusNotFound)
		rec = httptest.NewRecorder()
		api.ServeHTTP(rec, httptest.NewRequest("GET", "/health", nil))
		So(rec.Code, ShouldEqual, http.StatusOK)
	})
}
