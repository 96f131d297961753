package checks

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// WriteJUnit writes the report as JUnit XML, the dialect GitLab and the
// GitHub test-report actions read: <testsuites> holding one
// <testsuite name="orchard">, and one <testcase classname="orchard.<command>"
// name="<id>" time="…"> per checklist item. The name is the check's stable id
// alone (titles may carry figures), so a test keeps its identity from run to
// run; the title opens the testcase's text. A testcase's time is its step's
// duration shared among the step's checks (0 for checks outside a step, as in
// doctor). A failure carries <failure> with the evidence and the fix; a skip
// carries <skipped message="reason"/> (the checks of a step that did not run
// are there too, skipped with the reason); a warning passes, with its
// evidence and fix in <system-out>, as a pass's evidence is. The suite's time
// is the steps' total; the step list is the suite's <system-out>.
func WriteJUnit(w io.Writer, r *Report) error {
	n := r.Counts()
	var totalMS int64
	for _, s := range r.Steps {
		totalMS += s.DurationMS
	}
	class := "orchard"
	if r.Command != "" {
		class += "." + clean(r.Command)
	}
	suite := junitSuite{
		Name:     "orchard",
		Tests:    n.Total,
		Failures: n.Fail,
		Skipped:  n.Skip,
		Time:     seconds(totalMS),
	}
	for _, p := range [][2]string{{"command", r.Command}, {"backend", r.Backend}, {"build_dir", r.BuildDir}} {
		if p[1] != "" {
			suite.Properties = append(suite.Properties, junitProperty{Name: p[0], Value: clean(p[1])})
		}
	}
	stepMS, perStep := map[string]int64{}, map[string]int64{}
	for _, s := range r.Steps {
		stepMS[s.Name] = s.DurationMS
	}
	for _, c := range r.Checks {
		perStep[c.Step]++
	}
	for _, c := range r.Checks {
		var ms int64
		if c.Step != "" {
			ms = stepMS[c.Step] / perStep[c.Step]
		}
		suite.Cases = append(suite.Cases, junitTestcase(class, c, ms))
	}
	if len(r.Steps) > 0 {
		var b strings.Builder
		for _, s := range r.Steps {
			fmt.Fprintf(&b, "step %s: %s", s.Name, s.Status)
			switch {
			case s.Cached:
				b.WriteString(", cached")
			case s.Status != Skip || s.DurationMS > 0:
				b.WriteString(", " + formatDuration(s.DurationMS))
			}
			if d := firstLine(s.Detail); d != "" {
				b.WriteString(", " + d)
			}
			b.WriteString("\n")
		}
		suite.SystemOut = xmlText(clean(b.String()))
	}
	doc := junitSuites{
		Name: "orchard", Tests: n.Total, Failures: n.Fail, Skipped: n.Skip,
		Time: suite.Time, Suites: []junitSuite{suite},
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func junitTestcase(class string, c Check, ms int64) junitCase {
	tc := junitCase{Classname: class, Name: clean(c.ID), File: clean(c.File), Time: seconds(ms)}
	if c.File != "" && c.Line > 0 {
		tc.Line = c.Line
	}
	body := junitBody(c)
	switch c.Status {
	case Pass, Warn:
		tc.SystemOut = xmlText(body)
	case Skip:
		tc.Skipped = &junitSkip{Message: clean(c.reason())}
	default:
		msg := ""
		for _, e := range c.Evidence {
			if msg = firstLine(clean(e)); msg != "" {
				break
			}
		}
		if msg == "" {
			msg = "failed"
		}
		tc.Failure = &junitFailure{Message: msg, Type: string(c.Status), Body: body}
	}
	return tc
}

// junitBody is a check's title, location, evidence and fix as text, one per
// line; a warning's title reads "warning: <title>" (JUnit has no warn status).
func junitBody(c Check) string {
	var b strings.Builder
	switch {
	case c.Status == Warn:
		b.WriteString("warning: " + c.Title + "\n")
	case c.Title != "":
		b.WriteString(c.Title + "\n")
	}
	if loc := c.location(); loc != "" {
		b.WriteString("at " + loc + "\n")
	}
	for _, e := range c.Evidence {
		if strings.TrimSpace(e) != "" {
			b.WriteString(strings.TrimRight(e, "\n") + "\n")
		}
	}
	if h := strings.TrimSpace(c.Hint); h != "" {
		b.WriteString("fix: " + h + "\n")
	}
	return clean(b.String())
}

func seconds(ms int64) string { return fmt.Sprintf("%.3f", float64(ms)/1000) }

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
	SystemOut  xmlText         `xml:"system-out,omitempty"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Classname string        `xml:"classname,attr"`
	Name      string        `xml:"name,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Line      int           `xml:"line,attr,omitempty"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	Skipped   *junitSkip    `xml:"skipped,omitempty"`
	SystemOut xmlText       `xml:"system-out,omitempty"`
}

type junitSkip struct {
	Message string `xml:"message,attr"`
}

type junitFailure struct {
	Message string
	Type    string
	Body    string
}

// MarshalXML writes <failure message=… type=…>body</failure> with the body's
// line breaks kept as line breaks (struct chardata would write &#xA;).
func (f *junitFailure) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	start.Attr = append(start.Attr,
		xml.Attr{Name: xml.Name{Local: "message"}, Value: f.Message},
		xml.Attr{Name: xml.Name{Local: "type"}, Value: f.Type})
	return encodeText(e, start, f.Body)
}

// xmlText is element text written with its line breaks kept.
type xmlText string

func (t xmlText) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	if t == "" {
		return nil
	}
	return encodeText(e, start, string(t))
}

func encodeText(e *xml.Encoder, start xml.StartElement, text string) error {
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	if err := e.EncodeToken(xml.CharData(text)); err != nil {
		return err
	}
	return e.EncodeToken(start.End())
}
