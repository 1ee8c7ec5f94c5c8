//! Commune/ward boundaries from GeoJSON, and the point → commune lookup: an R-tree of
//! polygon bounding boxes narrows the candidates, `geo`'s point-in-polygon decides.
//!
//! Two tiers: the city, then its communes and wards (`level: commune`, or `ward`). The
//! district tier was abolished in 2025: a commune may name the district it used to belong
//! to (`legacy_district`, kept as an attribute for legacy data and `district:` scopes), and
//! old files with district polygons (`level: district`) still load.

use std::path::Path;

use geo::{BoundingRect, Contains, Coord, LineString, MultiPolygon, Point, Polygon};
use rstar::{RTree, RTreeObject, AABB};
use serde_json::Value;

use crate::CityError;

/// Whether a zone is a commune/ward or a (legacy) district.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneLevel {
    /// A commune or ward (xã/phường), the commune tier directly under the city.
    Ward,
    /// A district (quận/huyện) of legacy data, holding wards.
    District,
}

/// One zone: its id, name, level, parent district (wards) and shape.
#[derive(Debug, Clone)]
pub struct Zone {
    /// Stable id (e.g. `tan_an`), used as the alert key and the scope name.
    pub id: String,
    /// Display name (Vietnamese).
    pub name: String,
    /// English display name (the Vietnamese one when the file gives none).
    pub name_en: String,
    /// Ward or district.
    pub level: ZoneLevel,
    /// The district a commune used to belong to (legacy data), or its district polygon's id.
    pub district: Option<String>,
    /// The boundary.
    pub shape: MultiPolygon<f64>,
    /// Old files: the district polygon a ward names (checked to exist).
    polygon_district: Option<String>,
}

struct Indexed {
    zone: usize,
    envelope: AABB<[f64; 2]>,
}

impl RTreeObject for Indexed {
    type Envelope = AABB<[f64; 2]>;
    fn envelope(&self) -> Self::Envelope {
        self.envelope
    }
}

/// The city's zones with a spatial index over the wards.
pub struct ZoneMap {
    /// Every zone, wards and districts, in file order.
    pub zones: Vec<Zone>,
    wards: RTree<Indexed>,
}

impl std::fmt::Debug for ZoneMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ZoneMap({} zones)", self.zones.len())
    }
}

fn ring(value: &Value) -> Option<LineString<f64>> {
    let points = value.as_array()?;
    let coords: Option<Vec<Coord<f64>>> = points
        .iter()
        .map(|p| {
            let p = p.as_array()?;
            Some(Coord {
                x: p.first()?.as_f64()?,
                y: p.get(1)?.as_f64()?,
            })
        })
        .collect();
    Some(LineString::new(coords?))
}

fn polygon(rings: &Value) -> Option<Polygon<f64>> {
    let rings = rings.as_array()?;
    let exterior = ring(rings.first()?)?;
    let holes: Option<Vec<_>> = rings.iter().skip(1).map(ring).collect();
    Some(Polygon::new(exterior, holes?))
}

fn geometry(value: &Value) -> Option<MultiPolygon<f64>> {
    let coordinates = value.get("coordinates")?;
    match value.get("type")?.as_str()? {
        "Polygon" => Some(MultiPolygon::new(vec![polygon(coordinates)?])),
        "MultiPolygon" => {
            let polygons: Option<Vec<_>> = coordinates.as_array()?.iter().map(polygon).collect();
            Some(MultiPolygon::new(polygons?))
        }
        _ => None,
    }
}

impl ZoneMap {
    /// Parses a GeoJSON FeatureCollection whose features carry `id`, `name`, `name_en`,
    /// `level` (`commune` or `ward`; `district` for legacy district polygons) and
    /// optionally `legacy_district` (or, in old files, `district`: a district polygon's id).
    pub fn from_geojson(text: &str, file: &Path) -> Result<ZoneMap, CityError> {
        let doc: Value = serde_json::from_str(text)
            .map_err(|e| CityError::at(file, e.line() as u64, e.to_string()))?;
        let features = doc
            .get("features")
            .and_then(Value::as_array)
            .ok_or_else(|| CityError::at(file, 1, "not a GeoJSON FeatureCollection"))?;
        let mut zones = Vec::new();
        for (n, feature) in features.iter().enumerate() {
            let bad = |what: &str| CityError::at(file, 0, format!("feature {n}: {what}"));
            let props = feature
                .get("properties")
                .ok_or_else(|| bad("no properties"))?;
            let text = |k: &str| props.get(k).and_then(Value::as_str).map(str::to_string);
            let id = text("id").ok_or_else(|| bad("no `id`"))?;
            let level = match text("level").as_deref() {
                Some("commune" | "ward") => ZoneLevel::Ward,
                Some("district") => ZoneLevel::District,
                other => {
                    return Err(bad(&format!(
                        "`level` is {other:?}, not commune, ward or district"
                    )))
                }
            };
            let shape = feature
                .get("geometry")
                .and_then(geometry)
                .ok_or_else(|| bad("geometry must be a Polygon or MultiPolygon"))?;
            if zones.iter().any(|z: &Zone| z.id == id) {
                return Err(bad(&format!("zone id `{id}` appears twice")));
            }
            let name = text("name").unwrap_or_else(|| id.clone());
            zones.push(Zone {
                name_en: text("name_en").unwrap_or_else(|| name.clone()),
                name,
                district: text("legacy_district").or_else(|| text("district")),
                polygon_district: text("district"),
                id,
                level,
                shape,
            });
        }
        for zone in &zones {
            if let Some(d) = &zone.polygon_district {
                if !zones
                    .iter()
                    .any(|z| &z.id == d && z.level == ZoneLevel::District)
                {
                    return Err(CityError::at(
                        file,
                        0,
                        format!("ward `{}` names unknown district `{d}`", zone.id),
                    ));
                }
            }
        }
        let wards = zones
            .iter()
            .enumerate()
            .filter(|(_, z)| z.level == ZoneLevel::Ward)
            .filter_map(|(i, z)| {
                let rect = z.shape.bounding_rect()?;
                Some(Indexed {
                    zone: i,
                    envelope: AABB::from_corners(
                        [rect.min().x, rect.min().y],
                        [rect.max().x, rect.max().y],
                    ),
                })
            })
            .collect();
        Ok(ZoneMap {
            zones,
            wards: RTree::bulk_load(wards),
        })
    }

    /// The ward containing (`lat`, `lon`), if any.
    pub fn ward_at(&self, lat: f64, lon: f64) -> Option<&Zone> {
        let point = Point::new(lon, lat);
        self.wards
            .locate_in_envelope_intersecting(&AABB::from_point([lon, lat]))
            .map(|c| &self.zones[c.zone])
            .find(|z| z.shape.contains(&point))
    }

    /// A zone by id.
    pub fn get(&self, id: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.id == id)
    }

    /// The communes and wards, in file order.
    pub fn communes(&self) -> impl Iterator<Item = &Zone> {
        self.zones.iter().filter(|z| z.level == ZoneLevel::Ward)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_WARDS: &str = r#"{"type":"FeatureCollection","features":[
      {"type":"Feature","properties":{"id":"d","level":"district"},
       "geometry":{"type":"Polygon","coordinates":[[[0,0],[2,0],[2,1],[0,1],[0,0]]]}},
      {"type":"Feature","properties":{"id":"west","level":"ward","district":"d"},
       "geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}},
      {"type":"Feature","properties":{"id":"east","level":"ward","district":"d"},
       "geometry":{"type":"Polygon","coordinates":[[[1,0],[2,0],[2,1],[1.5,0.5],[1,1],[1,0]]]}}]}"#;

    #[test]
    fn points_fall_in_their_ward() {
        let map = ZoneMap::from_geojson(TWO_WARDS, Path::new("t.geojson")).unwrap();
        assert_eq!(map.ward_at(0.5, 0.5).unwrap().id, "west");
        assert_eq!(map.ward_at(0.2, 1.5).unwrap().id, "east");
        // Inside east's bounding box but in its notch: no ward.
        assert!(map.ward_at(0.9, 1.5).is_none());
        assert!(map.ward_at(5.0, 5.0).is_none());
        assert_eq!(
            map.ward_at(0.5, 0.5).unwrap().district.as_deref(),
            Some("d")
        );
    }

    #[test]
    fn communes_sit_directly_under_the_city_with_a_legacy_district() {
        let two_tier = r#"{"type":"FeatureCollection","features":[
          {"type":"Feature","properties":{"id":"a","name":"Phường A","name_en":"A Ward","level":"commune","legacy_district":"old"},
           "geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}}]}"#;
        let map = ZoneMap::from_geojson(two_tier, Path::new("t.geojson")).unwrap();
        let a = map.ward_at(0.5, 0.5).unwrap();
        assert_eq!(
            (a.name.as_str(), a.name_en.as_str()),
            ("Phường A", "A Ward")
        );
        assert_eq!(
            a.district.as_deref(),
            Some("old"),
            "no polygon needed for a legacy district"
        );
        assert_eq!(map.communes().count(), 1);
    }

    #[test]
    fn broken_files_say_what_is_wrong() {
        let e = ZoneMap::from_geojson(r#"{"features":[{"properties":{"id":"x","level":"ward"},"geometry":{"type":"Point","coordinates":[0,0]}}]}"#, Path::new("z.geojson")).unwrap_err();
        assert!(e.to_string().contains("Polygon"), "{e}");
        let e = ZoneMap::from_geojson(r#"{"features":[{"properties":{"id":"x","level":"ward","district":"nowhere"},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}}]}"#, Path::new("z.geojson")).unwrap_err();
        assert!(e.to_string().contains("unknown district"), "{e}");
    }
}
