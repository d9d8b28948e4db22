// Logging in through the org API as a Salesforce integration does: the SOAP
// Partner API `login` call and the OAuth 2.0 username-password token request.
// This file owns the two HTTP exchanges and what they answer (session, org,
// user); it must not know gRPC.

package main

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// soapAPIVersion is the Partner API version in the SOAP login path.
const soapAPIVersion = "62.0"

// session is what a login hands back: the bearer for gRPC and REST calls, the
// org (the `tenantid` gRPC header) and the user the org knows us as.
type session struct {
	Token       string
	InstanceURL string
	OrgID       string
	UserID      string
}

// soapEnvelope is the part of a SOAP login answer read here, by element name.
type soapEnvelope struct {
	Body struct {
		Fault *struct {
			Code   string `xml:"faultcode"`
			String string `xml:"faultstring"`
		} `xml:"Fault"`
		LoginResponse struct {
			Result struct {
				ServerURL string `xml:"serverUrl"`
				SessionID string `xml:"sessionId"`
				UserID    string `xml:"userId"`
				UserInfo  struct {
					OrganizationID string `xml:"organizationId"`
				} `xml:"userInfo"`
			} `xml:"result"`
		} `xml:"loginResponse"`
	} `xml:"Body"`
}

// xmlText escapes s for an XML element.
func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// soapLogin calls `login` at LOGIN_URL/services/Soap/u/NN.N.
func soapLogin(ctx context.Context, hc *http.Client, loginURL, username, password string) (session, error) {
	body := `<?xml version="1.0" encoding="utf-8"?>` +
		`<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com">` +
		`<env:Body><urn:login><urn:username>` + xmlText(username) + `</urn:username>` +
		`<urn:password>` + xmlText(password) + `</urn:password></urn:login></env:Body></env:Envelope>`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		strings.TrimRight(loginURL, "/")+"/services/Soap/u/"+soapAPIVersion, strings.NewReader(body))
	if err != nil {
		return session{}, err
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("SOAPAction", "login")
	res, err := hc.Do(req)
	if err != nil {
		return session{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return session{}, err
	}
	var env soapEnvelope
	if err := xml.Unmarshal(raw, &env); err != nil {
		return session{}, fmt.Errorf("SOAP login answered %d with unreadable XML: %w", res.StatusCode, err)
	}
	if f := env.Body.Fault; f != nil {
		return session{}, fmt.Errorf("SOAP fault %s: %s", f.Code, f.String)
	}
	r := env.Body.LoginResponse.Result
	if res.StatusCode != http.StatusOK || r.SessionID == "" {
		return session{}, fmt.Errorf("SOAP login answered %d without a session: %.300s", res.StatusCode, raw)
	}
	// serverUrl is https://host/services/Soap/u/NN.N/ORGID: the instance is its origin.
	instance := loginURL
	if u, err := url.Parse(r.ServerURL); err == nil && u.Host != "" {
		instance = u.Scheme + "://" + u.Host
	}
	return session{Token: r.SessionID, InstanceURL: instance, OrgID: r.UserInfo.OrganizationID, UserID: r.UserID}, nil
}

// oauthLogin asks LOGIN_URL/services/oauth2/token for a token with the
// username-password grant of a connected app.
func oauthLogin(ctx context.Context, hc *http.Client, loginURL, clientID, clientSecret, username, password string) (session, error) {
	form := url.Values{
		"grant_type":    {"password"},
		"client_id":     {clientID},
		"client_secret": {clientSecret},
		"username":      {username},
		"password":      {password},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		strings.TrimRight(loginURL, "/")+"/services/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return session{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := hc.Do(req)
	if err != nil {
		return session{}, err
	}
	defer res.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		InstanceURL string `json:"instance_url"`
		ID          string `json:"id"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&body); err != nil {
		return session{}, fmt.Errorf("OAuth token answered %d with unreadable JSON: %w", res.StatusCode, err)
	}
	if res.StatusCode != http.StatusOK || body.AccessToken == "" {
		return session{}, fmt.Errorf("OAuth token answered %d: %s %s", res.StatusCode, body.Error, body.Description)
	}
	// The identity URL ends in /id/ORGID/USERID.
	parts := strings.Split(strings.TrimRight(body.ID, "/"), "/")
	s := session{Token: body.AccessToken, InstanceURL: body.InstanceURL}
	if len(parts) >= 2 {
		s.OrgID, s.UserID = parts[len(parts)-2], parts[len(parts)-1]
	}
	return s, nil
}

// restCall sends one REST API request with the session's bearer and returns
// the status and the parsed JSON body (nil when empty).
func restCall(ctx context.Context, hc *http.Client, s session, method, path string, body any) (int, map[string]any, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = strings.NewReader(string(raw))
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(s.InstanceURL, "/")+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Content-Type", "application/json")
	res, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return res.StatusCode, nil, err
	}
	if len(strings.TrimSpace(string(raw))) == 0 {
		return res.StatusCode, nil, nil
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		// Errors come as a JSON array; keep the text for the report.
		return res.StatusCode, map[string]any{"raw": string(raw)}, nil
	}
	return res.StatusCode, out, nil
}
