#!/usr/bin/env python3
"""A copy of alert-rules/ whose registry holds 10,000 stations (the demo city's 95 plus
synthetic traffic sensors spread over the city), for the dashboard's map benchmark.
Usage: make_big_city.py <target dir> [stations]"""
import os, random, shutil, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../..")
target = sys.argv[1]
total = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
shutil.rmtree(target, ignore_errors=True)
shutil.copytree(os.path.join(root, "alert-rules"), target)
path = os.path.join(target, "city/stations.csv")
lines = open(path).read().splitlines()
header = [l for l in lines if l.startswith("id,")][0].split(",")
count = sum(1 for l in lines if l and not l.startswith("#") and not l.startswith("id,"))
rng = random.Random(10000)
with open(path, "a") as f:
    for n in range(total - count):
        row = dict.fromkeys(header, "")
        row.update(id=f"BIG-TR-{n:05}", name=f"Sensor {n}", kind="traffic",
                   lat=f"{rng.uniform(9.9815, 10.0785):.5f}", lon=f"{rng.uniform(105.7015, 105.8185):.5f}",
                   free_flow_kmh=str(rng.choice([40, 50, 60])))
        f.write(",".join(row[h] for h in header) + "\n")
print(f"{total} stations in {target}")
