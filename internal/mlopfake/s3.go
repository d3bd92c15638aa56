package mlopfake

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// This file is the S3 (MinIO) listener behind presigned URLs. PUT needs a
// valid, unexpired signature from /files (no auth header, like S3); GET is
// open, like the public bucket of the self-host compose.

type object struct {
	data        []byte
	contentType string
	puts        int
	at          time.Time
}

// objects are the stored S3 objects by key. mu guards m.
type objects struct {
	mu sync.Mutex
	m  map[string]*object
}

func (o *objects) get(key string) (object, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ob, ok := o.m[key]
	if !ok {
		return object{}, false
	}
	return *ob, true
}

func (o *objects) put(key string, data []byte, ct string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = make(map[string]*object)
	}
	ob := o.m[key]
	if ob == nil {
		ob = &object{}
		o.m[key] = ob
	}
	ob.data, ob.contentType, ob.at = data, ct, time.Now()
	ob.puts++
}

const amzDateFormat = "20060102T150405Z"
const presignExpiry = time.Hour

func (s *Server) signature(key, amzDate string) string {
	m := hmac.New(sha256.New, s.secret)
	fmt.Fprintf(m, "PUT\n%s/%s\n%s", s.opts.Bucket, key, amzDate)
	return hex.EncodeToString(m.Sum(nil))
}

// presign returns a presigned-looking PUT URL for key on the S3 listener.
func (s *Server) presign(key string, now time.Time) string {
	amzDate := now.UTC().Format(amzDateFormat)
	q := url.Values{}
	q.Set("X-Amz-Algorithm", "AWS4-HMAC-SHA256")
	q.Set("X-Amz-Credential", "mlopfake/"+amzDate[:8]+"/us-east-1/s3/aws4_request")
	q.Set("X-Amz-Date", amzDate)
	q.Set("X-Amz-Expires", fmt.Sprint(int(presignExpiry.Seconds())))
	q.Set("X-Amz-SignedHeaders", "host")
	q.Set("X-Amz-Signature", s.signature(key, amzDate))
	return s.S3URL() + "/" + s.opts.Bucket + "/" + awsURIEncode(key) + "?" + q.Encode()
}

// awsURIEncode encodes an object key the way SigV4 does: unreserved
// characters kept, '/' kept, everything else %XX.
func awsURIEncode(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' || c == '/' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func s3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message></Error>", code, msg)
}

func (s *Server) s3Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, ok := strings.CutPrefix(r.URL.Path, "/"+s.opts.Bucket+"/")
		if !ok || key == "" {
			s.reject(ServiceS3, r, http.StatusNotFound, "path is not an object in bucket "+s.opts.Bucket)
			s3Error(w, http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist")
			return
		}
		switch r.Method {
		case http.MethodPut:
			q := r.URL.Query()
			amzDate := q.Get("X-Amz-Date")
			sig := q.Get("X-Amz-Signature")
			if sig == "" || !hmac.Equal([]byte(sig), []byte(s.signature(key, amzDate))) {
				drain(r.Body)
				s.reject(ServiceS3, r, http.StatusForbidden, "presigned URL signature does not match the path and query (URL altered?)")
				s3Error(w, http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
				return
			}
			if t, err := time.Parse(amzDateFormat, amzDate); err != nil || time.Since(t) > presignExpiry {
				drain(r.Body)
				s.reject(ServiceS3, r, http.StatusForbidden, "presigned URL expired")
				s3Error(w, http.StatusForbidden, "AccessDenied", "Request has expired")
				return
			}
			data, err := io.ReadAll(io.LimitReader(r.Body, 5<<30))
			if err != nil {
				s.reject(ServiceS3, r, http.StatusBadRequest, fmt.Sprintf("read body: %v", err))
				s3Error(w, http.StatusBadRequest, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header.")
				return
			}
			s.objects.put(key, data, r.Header.Get("Content-Type"))
			s.cnt.s3Puts.Add(1)
			s.cnt.s3PutBytes.Add(int64(len(data)))
			sum := md5.Sum(data)
			w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
			w.WriteHeader(http.StatusOK)
		case http.MethodGet, http.MethodHead:
			ob, ok := s.objects.get(key)
			if !ok {
				s.reject(ServiceS3, r, http.StatusNotFound, "no such object "+key)
				s3Error(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
				return
			}
			ct := ob.contentType
			if ct == "" {
				ct = "application/octet-stream"
			}
			w.Header().Set("Content-Type", ct)
			w.Header().Set("Content-Length", fmt.Sprint(len(ob.data)))
			w.WriteHeader(http.StatusOK)
			if r.Method == http.MethodGet {
				w.Write(ob.data)
			}
		default:
			s.reject(ServiceS3, r, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on an object")
			s3Error(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource.")
		}
	})
}
