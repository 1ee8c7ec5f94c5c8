#!/usr/bin/env python3
"""Draws the demo city (Cần Thơ-like geography, approximate polygons drawn for the demo,
not survey boundaries) and its station registry. Deterministic: run it again and the same
files come out. Output: zones.geojson, stations.csv (beside this script).

Two-tier local government (since 1 July 2025): the city, then its communes and wards
(xã, phường) directly; no district tier. The district each commune used to belong to is
kept only as its `legacy_district` attribute."""
import json, os, random, unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
# The original 3 x 3 wards draw from `rng`, in the order they always have, so their
# boundaries and every station in them stay where they were. Everything added later (the
# western column of communes and its stations) draws from `west_rng`, after them.
rng = random.Random(20261127)
west_rng = random.Random(20250701)

# The original wards: three columns west to east (named after the abolished districts,
# now only the wards' `legacy_district`), three wards each, south to north.
DISTRICTS = [
    ("binh_thuy", "Bình Thủy", [("long_hoa", "Long Hòa"), ("bui_huu_nghia", "Bùi Hữu Nghĩa"), ("tra_noc", "Trà Nóc")]),
    ("ninh_kieu", "Ninh Kiều", [("an_binh", "An Bình"), ("xuan_khanh", "Xuân Khánh"), ("tan_an", "Tân An")]),
    ("cai_rang", "Cái Răng", [("ba_lang", "Ba Láng"), ("le_binh", "Lê Bình"), ("hung_phu", "Hưng Phú")]),
]
# Rural communes west of the Bình Thủy column (column -1), south to north; formerly of
# Phong Điền district. Names are bare place names, like the wards'; `type` says xã or phường.
WEST = ("phong_dien", [("nhon_ai", "Nhơn Ái"), ("my_khanh", "Mỹ Khánh"), ("giai_xuan", "Giai Xuân")])
LON = [105.70, 105.74, 105.78, 105.82]
WEST_LON = 105.66
LAT = [9.98, 10.013, 10.047, 10.08]

def lon_at(i):
    return WEST_LON if i == -1 else LON[i]

# Grid of vertices; interior ones are nudged so boundaries are not straight lines (and
# latitudes on the west and east city borders, so ward edges meet them unevenly).
def vertex(i, j):
    lon, lat = LON[i], LAT[j]
    if 0 < i < 3:
        lon += rng.uniform(-0.004, 0.004)
    if 0 < j < 3:
        lat += rng.uniform(-0.004, 0.004)
    return [round(lon, 5), round(lat, 5)]

grid = {(i, j): vertex(i, j) for i in range(4) for j in range(4)}
# Midpoints on each edge, nudged too, so each ward has eight corners.
mid = {}
def midpoint(a, b, r=rng, border_columns=(0, 3)):
    k = tuple(sorted([a, b]))
    if k not in mid:
        (x1, y1), (x2, y2) = grid[a], grid[b]
        on_border = (a[0] == b[0] and a[0] in border_columns) or (a[1] == b[1] and a[1] in (0, 3))
        wobble = 0 if on_border else 0.003
        mid[k] = [round((x1 + x2) / 2 + r.uniform(-wobble, wobble), 5),
                  round((y1 + y2) / 2 + r.uniform(-wobble, wobble), 5)]
    return mid[k]

def ring(cells):
    """Boundary of a column of cells (i fixed, j range) as a closed ring, counter-clockwise."""
    i, js = cells
    pts = []
    lo, hi = js[0], js[-1] + 1
    for j in range(lo, hi):          # east edge going north
        pts += [grid[(i + 1, j)], midpoint((i + 1, j), (i + 1, j + 1))]
    pts += [grid[(i + 1, hi)], midpoint((i + 1, hi), (i, hi))]
    for j in range(hi, lo, -1):      # west edge going south
        pts += [grid[(i, j)], midpoint((i, j), (i, j - 1))]
    pts += [grid[(i, lo)], midpoint((i, lo), (i + 1, lo))]
    pts.append(pts[0])
    return pts

def ascii_name(name):
    """ASCII transliteration: Vietnamese diacritics dropped, đ → d."""
    name = name.replace("Đ", "D").replace("đ", "d")
    return "".join(c for c in unicodedata.normalize("NFD", name) if not unicodedata.combining(c))

def commune(cid, base, kind, legacy_district, coordinates):
    name = base
    name_en = ascii_name(base) + (" Commune" if kind == "xã" else " Ward")
    return {"type": "Feature",
            "properties": {"id": cid, "name": name, "name_en": name_en, "level": "commune",
                           "type": kind, "legacy_district": legacy_district},
            "geometry": {"type": "Polygon", "coordinates": [coordinates]}}

features = []
for i, (did, dname, wards) in enumerate(DISTRICTS):
    # The abolished district's outline is no zone any more, but drawing it first keeps the
    # random draws (so every ward's boundary and every station) exactly as they were.
    ring((i, [0, 1, 2]))
    for j, (wid, wname) in enumerate(wards):
        features.append(commune(wid, wname, "phường", did, ring((i, [j]))))

# The western column: its east edge is the Bình Thủy column's west edge (a straight line,
# once the city border); its west edge at WEST_LON is the new city border.
for j in range(4):
    lat = LAT[j] + (west_rng.uniform(-0.004, 0.004) if 0 < j < 3 else 0)
    grid[(-1, j)] = [WEST_LON, round(lat, 5)]
for j in range(4):
    midpoint((-1, j), (0, j), west_rng, (-1, 3))
    if j < 3:
        midpoint((-1, j), (-1, j + 1), west_rng, (-1, 3))
for j, (cid, cname) in enumerate(WEST[1]):
    features.append(commune(cid, cname, "xã", WEST[0], ring((-1, [j]))))

with open(os.path.join(HERE, "zones.geojson"), "w") as f:
    json.dump({"type": "FeatureCollection",
               "name": "Watchfloor demo city: approximate Cần Thơ-like communes and wards "
                       "(two-tier: city, then communes), drawn for the demo",
               "features": features}, f, ensure_ascii=False, indent=1)
    f.write("\n")

def inside(i, j, r=rng):
    """A point well inside ward (i, j), away from its wobbly edges."""
    return (round(r.uniform(lon_at(i) + 0.009, lon_at(i + 1) - 0.009), 5),
            round(r.uniform(LAT[j] + 0.009, LAT[j + 1] - 0.009), 5))

def ward_name(i, j):
    return WEST[1][j][1] if i == -1 else DISTRICTS[i][2][j][1]

rows = []
HEADER = ["id", "name", "kind", "lat", "lon", "regulation", "qcvn_column", "receiving", "receiving_size",
          "discharge_m3_day", "kq", "kf", "gauge", "cadence_s", "free_flow_kmh"]
# (free_flow_kmh stays last: tests/server_api.rs reads it as a row's last cell.)
# Registered reporting interval per kind, seconds; cameras report on events (none).
CADENCE_S = {"discharge": 300, "air": 300, "water_level": 300, "water_quality": 300, "rainfall": 300,
             "weather": 300, "emission": 300, "traffic": 60, "camera": "", "indicator": ""}
def row(**kw):
    kw.setdefault("cadence_s", CADENCE_S[kw["kind"]])
    rows.append([str(kw.get(h, "")) for h in HEADER])

# Discharge stations at industrial zones (Trà Nóc in Bình Thủy, Hưng Phú in Cái Răng).
plants = [
    ("Trà Nóc 1 seafood", (0, 2), "B", "river", 120, 1200, "", ""),
    ("Trà Nóc 1 rice mill", (0, 2), "B", "river", 120, 300, "", ""),
    ("Trà Nóc 2 brewery", (0, 2), "B", "river", 120, 6000, "", ""),
    ("Trà Nóc 2 textile", (0, 1), "A", "river", 40, 2500, "", ""),
    ("Hưng Phú seafood", (2, 2), "B", "river", 600, 1800, "", ""),
    ("Hưng Phú feed mill", (2, 2), "B", "river", 600, 40, "", ""),
    ("Hưng Phú paper", (2, 1), "A", "lake", 5, 800, "", ""),
    ("Cái Sơn hospital", (1, 0), "B", "river", 120, 450, "1.0", "1.0"),
    ("Bình Thủy market", (0, 0), "B", "river", 120, 90, "", ""),
    ("Ba Láng tannery", (2, 0), "B", "river", 250, 5200, "", ""),
]
for n, (name, (i, j), col, recv, size, flow, kq, kf) in enumerate(plants, 1):
    lon, lat = inside(i, j)
    row(id=f"CT-DIS-{n:02}", name=name, kind="discharge", lat=lat, lon=lon, regulation="qcvn40-2011",
        qcvn_column=col, receiving=recv, receiving_size=size, discharge_m3_day=flow, kq=kq, kf=kf)
# Air-quality stations: one per original ward.
for n, (i, j) in enumerate([(i, j) for i in range(3) for j in range(3)], 1):
    lon, lat = inside(i, j)
    row(id=f"CT-AIR-{n:02}", name=f"Air {ward_name(i, j)}", kind="air", lat=lat, lon=lon)
# Hydrology stations on the Hậu river bank and canals (gauge datum of Cần Thơ).
for n, (i, j) in enumerate([(1, 2), (2, 2), (0, 2), (1, 1)], 1):
    lon, lat = inside(i, j)
    row(id=f"CT-HY-{n:02}", name=f"Water level {ward_name(i, j)}", kind="water_level", lat=lat,
        lon=lon, gauge="can_tho")
# Traffic loop/radar sensors and AI cameras, four of each per original ward.
for kind, prefix, label in [("traffic", "CT-TR", "Traffic sensor"), ("camera", "CT-CAM", "Camera")]:
    n = 0
    for i in range(3):
        for j in range(3):
            for _ in range(4):
                n += 1
                lon, lat = inside(i, j)
                ff = rng.choice([40, 50, 60]) if kind == "traffic" else ""
                row(id=f"{prefix}-{n:02}", name=f"{label} {n} {ward_name(i, j)}", kind=kind,
                    lat=lat, lon=lon, free_flow_kmh=ff)
# The western communes (appended, so the rows above keep their order): a water-level gauge
# on the Cần Thơ river (alarm levels of the Cần Thơ gauge) and an air station. (The first
# draw placed a rain gauge the simulator cannot feed; it is kept so the others stay put.)
lon, lat = inside(-1, 0, west_rng)
lon, lat = inside(-1, 1, west_rng)
row(id="CT-HY-05", name=f"Water level {ward_name(-1, 1)}", kind="water_level", lat=lat, lon=lon,
    gauge="can_tho")
lon, lat = inside(-1, 2, west_rng)
row(id="CT-AIR-10", name=f"Air {ward_name(-1, 2)}", kind="air", lat=lat, lon=lon)
# The health department's surveillance system pushes indicator values (kind `indicator`,
# docs/indicators.md); registered at the department's office in Tân An.
row(id="SYT-FEED", name="Sở Y tế — surveillance feed", kind="indicator", lat=10.0625, lon=105.7655)

with open(os.path.join(HERE, "stations.csv"), "w") as f:
    f.write("# Station registry of the demo city (generated by make_city.py; edit freely).\n")
    f.write("# Discharge stations: QCVN 40 column and the inputs of Kq (receiving water, its size: river Q in m3/s,\n")
    f.write("# lake volume in million m3) and Kf (discharge volume, m3/day); kq/kf, when given, override the\n")
    f.write("# tables (a permit's own values). Hydrology: the alarm-level gauge. Traffic: free-flow speed.\n")
    f.write("# cadence_s: the station's registered reporting interval in seconds (empty: it reports on\n")
    f.write("# events, as cameras do).\n")
    f.write("# The commune/ward comes from zones.geojson by location; the legacy district from that\n")
    f.write("# commune's `legacy_district`.\n")
    f.write(",".join(HEADER) + "\n")
    for r in rows:
        f.write(",".join(r) + "\n")
print(f"{len(features)} zones, {len(rows)} stations")
