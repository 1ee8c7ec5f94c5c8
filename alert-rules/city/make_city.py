#!/usr/bin/env python3
"""Draws the demo city (Cần Thơ-like geography, approximate polygons drawn for the demo,
not survey boundaries) and its station registry. Deterministic: run it again and the same
files come out. Output: zones.geojson, stations.csv (beside this script)."""
import json, math, os, random

HERE = os.path.dirname(os.path.abspath(__file__))
rng = random.Random(20261127)

# Three districts west to east, three wards each, south to north.
DISTRICTS = [
    ("binh_thuy", "Bình Thủy", [("long_hoa", "Long Hòa"), ("bui_huu_nghia", "Bùi Hữu Nghĩa"), ("tra_noc", "Trà Nóc")]),
    ("ninh_kieu", "Ninh Kiều", [("an_binh", "An Bình"), ("xuan_khanh", "Xuân Khánh"), ("tan_an", "Tân An")]),
    ("cai_rang", "Cái Răng", [("ba_lang", "Ba Láng"), ("le_binh", "Lê Bình"), ("hung_phu", "Hưng Phú")]),
]
LON = [105.70, 105.74, 105.78, 105.82]
LAT = [9.98, 10.013, 10.047, 10.08]

# Grid of vertices; interior ones are nudged so boundaries are not straight lines.
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
def midpoint(a, b):
    k = tuple(sorted([a, b]))
    if k not in mid:
        (x1, y1), (x2, y2) = grid[a], grid[b]
        on_border = (a[0] == b[0] and a[0] in (0, 3)) or (a[1] == b[1] and a[1] in (0, 3))
        wobble = 0 if on_border else 0.003
        mid[k] = [round((x1 + x2) / 2 + rng.uniform(-wobble, wobble), 5),
                  round((y1 + y2) / 2 + rng.uniform(-wobble, wobble), 5)]
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

features = []
for i, (did, dname, wards) in enumerate(DISTRICTS):
    features.append({"type": "Feature", "properties": {"id": did, "name": dname, "level": "district"},
                     "geometry": {"type": "Polygon", "coordinates": [ring((i, [0, 1, 2]))]}})
    for j, (wid, wname) in enumerate(wards):
        features.append({"type": "Feature",
                         "properties": {"id": wid, "name": wname, "level": "ward", "district": did},
                         "geometry": {"type": "Polygon", "coordinates": [ring((i, [j]))]}})
with open(os.path.join(HERE, "zones.geojson"), "w") as f:
    json.dump({"type": "FeatureCollection",
               "name": "Watchfloor demo city: approximate Cần Thơ-like wards and districts, drawn for the demo",
               "features": features}, f, ensure_ascii=False, indent=1)
    f.write("\n")

def inside(i, j):
    """A point well inside ward (i, j), away from its wobbly edges."""
    return (round(rng.uniform(LON[i] + 0.009, LON[i + 1] - 0.009), 5),
            round(rng.uniform(LAT[j] + 0.009, LAT[j + 1] - 0.009), 5))

rows = []
HEADER = ["id", "name", "kind", "lat", "lon", "regulation", "qcvn_column", "receiving", "receiving_size",
          "discharge_m3_day", "kq", "kf", "gauge", "free_flow_kmh"]
def row(**kw):
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
# Air-quality stations: one per ward.
for n, (i, j) in enumerate([(i, j) for i in range(3) for j in range(3)], 1):
    lon, lat = inside(i, j)
    row(id=f"CT-AIR-{n:02}", name=f"Air {DISTRICTS[i][2][j][1]}", kind="air", lat=lat, lon=lon)
# Hydrology stations on the Hậu river bank and canals (gauge datum of Cần Thơ).
for n, (i, j) in enumerate([(1, 2), (2, 2), (0, 2), (1, 1)], 1):
    lon, lat = inside(i, j)
    row(id=f"CT-HY-{n:02}", name=f"Water level {DISTRICTS[i][2][j][1]}", kind="water_level", lat=lat,
        lon=lon, gauge="can_tho")
# Traffic loop/radar sensors and AI cameras, four of each per ward.
for kind, prefix, label in [("traffic", "CT-TR", "Traffic sensor"), ("camera", "CT-CAM", "Camera")]:
    n = 0
    for i in range(3):
        for j in range(3):
            for _ in range(4):
                n += 1
                lon, lat = inside(i, j)
                ff = rng.choice([40, 50, 60]) if kind == "traffic" else ""
                row(id=f"{prefix}-{n:02}", name=f"{label} {n} {DISTRICTS[i][2][j][1]}", kind=kind,
                    lat=lat, lon=lon, free_flow_kmh=ff)

with open(os.path.join(HERE, "stations.csv"), "w") as f:
    f.write("# Station registry of the demo city (generated by make_city.py; edit freely).\n")
    f.write("# Discharge stations: QCVN 40 column and the inputs of Kq (receiving water, its size: river Q in m3/s,\n")
    f.write("# lake volume in million m3) and Kf (discharge volume, m3/day); kq/kf, when given, override the\n")
    f.write("# tables (a permit's own values). Hydrology: the alarm-level gauge. Traffic: free-flow speed.\n")
    f.write("# ward/district come from zones.geojson by location.\n")
    f.write(",".join(HEADER) + "\n")
    for r in rows:
        f.write(",".join(r) + "\n")
print(f"{len(features)} zones, {len(rows)} stations")
