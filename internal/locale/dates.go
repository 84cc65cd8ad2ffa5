package locale

import (
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/number"
)

// x/text has no date formatter (CLDR's date patterns are not in it), so
// the day and month names and the order of a date's parts are catalogue
// messages, copied from CLDR's Gregorian calendar for the locale
// ("date.weekday.0" is Sunday, "date.month.1" January, "date.day" the
// full date with %[1]s weekday, %[2]v day, %[3]s month, %[4]v year,
// "date.clock" the 24-hour time with %[1]v hour, %[2]v minute). The
// digits are x/text's, in the locale's numbering system.

// Day writes t's date, in t's location, the locale's long way:
// "Friday 4 December 2026", "2026年12月4日金曜日", "الجمعة، ٤ ديسمبر ٢٠٢٦".
func (l *Locale) Day(t time.Time) string {
	return l.p.Sprintf("date.day", l.p.Sprintf("date.weekday."+strconv.Itoa(int(t.Weekday()))),
		number.Decimal(t.Day()), l.p.Sprintf("date.month."+strconv.Itoa(int(t.Month()))),
		number.Decimal(t.Year(), number.NoSeparator()))
}

// Clock writes t's time of day, in t's location: "23:05".
func (l *Locale) Clock(t time.Time) string {
	return l.p.Sprintf("date.clock", number.Decimal(t.Hour(), number.MinIntegerDigits(2)),
		number.Decimal(t.Minute(), number.MinIntegerDigits(2)))
}

// Calendar is what a browser needs to write a date the way Day and Clock
// do, in the fan's own zone, once its script knows that zone: the names,
// the patterns with {weekday} {day} {month} {year} / {hour} {minute} in
// place of the arguments, and the ten digits.
type Calendar struct {
	Weekdays []string `json:"weekdays"`
	Months   []string `json:"months"`
	Day      string   `json:"day"`
	Clock    string   `json:"clock"`
	Digits   string   `json:"digits"`
}

// Calendar returns the locale's calendar for the page's script.
func (l *Locale) Calendar() Calendar { return l.cal }

func (l *Locale) calendar() Calendar {
	c := Calendar{
		Day:   l.p.Sprintf("date.day", "{weekday}", "{day}", "{month}", "{year}"),
		Clock: l.p.Sprintf("date.clock", "{hour}", "{minute}"),
	}
	for i := range 7 {
		c.Weekdays = append(c.Weekdays, l.p.Sprintf("date.weekday."+strconv.Itoa(i)))
	}
	for i := 1; i <= 12; i++ {
		c.Months = append(c.Months, l.p.Sprintf("date.month."+strconv.Itoa(i)))
	}
	var d strings.Builder
	for i := range 10 {
		d.WriteString(l.p.Sprint(number.Decimal(i)))
	}
	c.Digits = d.String()
	return c
}
