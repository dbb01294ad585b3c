package main

// Freeze windows name IANA time zones (timeZone: Europe/Berlin): the
// binary carries the zone database, so that a host or image without
// /usr/share/zoneinfo reads them as one with it does.
import _ "time/tzdata"
