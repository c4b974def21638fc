//! What an order carries besides its two points: who receives and who sends
//! it, its goods, the parcels they travel in, notes and metadata
//! (`docs/protocol.md`, "Orders: recipients, items, packages"), and the
//! bounds each of them is checked against.

use crate::package::PackageStatus;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// Most items one order may hold.
pub const MAX_ITEMS: usize = 1000;
/// Most packages one order may be split into.
pub const MAX_PACKAGES: usize = 200;
/// Longest SKU or package number, bytes.
pub const MAX_CODE: usize = 64;
/// Largest quantity of one item.
pub const MAX_QTY: u32 = 1_000_000;
/// Largest encoded `metadata` object, bytes.
pub const MAX_METADATA: usize = 4096;
/// Longest `notes`, bytes.
pub const MAX_NOTES: usize = 2000;
/// Longest phone number, characters.
pub const MAX_PHONE: usize = 32;
/// Longest name, carrier or waybill, bytes.
pub const MAX_NAME: usize = 128;
/// Longest address, bytes.
pub const MAX_ADDRESS: usize = 512;
/// Levels of an address code: province, city, district, street.
pub const ADDRESS_LEVELS: usize = 4;

/// A recipient or a sender.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Party {
    /// Their name.
    pub name: String,
    /// Their phone; shown to admins, the order's customer and its rider only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The street address as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The administrative codes of the address, coarse to fine (province,
    /// city, district, street): one to four codes of 1..=16 letters or digits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub address_code: Vec<String>,
}

/// One line of the goods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Stock-keeping unit; unique within the order.
    pub sku: String,
    /// What it is called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How many.
    pub qty: u32,
    /// Weight of one, grams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_g: Option<u32>,
    /// Volume of one, cm³.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_cm3: Option<u32>,
}

/// A quantity of one SKU inside a package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackedItem {
    /// One of the order's SKUs.
    pub sku: String,
    /// How many of it travel in this package.
    pub qty: u32,
}

/// A package as `POST /v1/orders` gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPackage {
    /// The package's number, unique within the order; its id in the API.
    pub package_no: String,
    /// What it holds.
    pub items: Vec<PackedItem>,
    /// Who carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    /// The carrier's waybill number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waybill: Option<String>,
}

/// A package as stored: what it was created with, and where it is now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Package {
    /// The package's number, unique within the order.
    pub package_no: String,
    /// What it holds.
    pub items: Vec<PackedItem>,
    /// Who carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    /// The carrier's waybill number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waybill: Option<String>,
    /// Where it is in its own life.
    pub status: PackageStatus,
    /// Rises by one on every change of the package; its writers compare-and-set on it.
    pub version: i64,
    /// Its last change, Unix ms.
    pub updated_at: i64,
}

impl Package {
    /// A package as created with its order: `created`, version 1.
    pub fn new(p: NewPackage, now: i64) -> Self {
        Package {
            package_no: p.package_no,
            items: p.items,
            carrier: p.carrier,
            waybill: p.waybill,
            status: PackageStatus::Created,
            version: 1,
            updated_at: now,
        }
    }
}

fn bad(field: impl std::fmt::Display, why: impl std::fmt::Display) -> String {
    format!("`{field}` {why}")
}

fn printable(field: &str, v: &str, max: usize) -> Result<(), String> {
    if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(bad(field, format!("must be 1..={max} printable bytes")));
    }
    Ok(())
}

fn optional(field: &str, v: &Option<String>, max: usize) -> Result<(), String> {
    v.as_deref().map_or(Ok(()), |v| printable(field, v, max))
}

/// Checks a recipient or sender; the message names the field (`recipient.phone`, …).
pub fn check_party(field: &str, p: &Party) -> Result<(), String> {
    printable(&format!("{field}.name"), &p.name, MAX_NAME)?;
    if let Some(phone) = &p.phone {
        let ok = (3..=MAX_PHONE).contains(&phone.chars().count())
            && phone.chars().any(|c| c.is_ascii_digit())
            && phone
                .chars()
                .all(|c| c.is_ascii_digit() || "+-() ".contains(c));
        if !ok {
            return Err(bad(
                format!("{field}.phone"),
                format!("must be 3..={MAX_PHONE} digits, spaces and + - ( )"),
            ));
        }
    }
    optional(&format!("{field}.address"), &p.address, MAX_ADDRESS)?;
    if p.address_code.len() > ADDRESS_LEVELS {
        return Err(bad(
            format!("{field}.address_code"),
            format!("has at most {ADDRESS_LEVELS} levels"),
        ));
    }
    for (i, code) in p.address_code.iter().enumerate() {
        if code.is_empty() || code.len() > 16 || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(bad(
                format!("{field}.address_code[{i}]"),
                "must be 1..=16 letters or digits",
            ));
        }
    }
    Ok(())
}

/// Checks the goods of a new order: the items, and packages that hold every
/// item's quantity exactly. The message names the first bad field.
pub fn check_goods(items: &[Item], packages: &[NewPackage]) -> Result<(), String> {
    if items.len() > MAX_ITEMS {
        return Err(bad(
            "items",
            format!("holds at most {MAX_ITEMS} lines, not {}", items.len()),
        ));
    }
    let mut ordered: BTreeMap<&str, u64> = BTreeMap::new();
    for (i, it) in items.iter().enumerate() {
        printable(&format!("items[{i}].sku"), &it.sku, MAX_CODE)?;
        optional(&format!("items[{i}].name"), &it.name, MAX_NAME)?;
        if !(1..=MAX_QTY).contains(&it.qty) {
            return Err(bad(
                format!("items[{i}].qty"),
                format!("must be 1..={MAX_QTY}"),
            ));
        }
        if ordered.insert(&it.sku, u64::from(it.qty)).is_some() {
            return Err(bad(format!("items[{i}].sku"), "appears twice"));
        }
    }
    if packages.is_empty() {
        return Ok(());
    }
    if items.is_empty() {
        return Err(bad("packages", "need the order's `items`"));
    }
    if packages.len() > MAX_PACKAGES {
        return Err(bad(
            "packages",
            format!("holds at most {MAX_PACKAGES}, not {}", packages.len()),
        ));
    }
    let mut numbers = HashSet::new();
    let mut packed: BTreeMap<&str, u64> = BTreeMap::new();
    for (i, p) in packages.iter().enumerate() {
        printable(
            &format!("packages[{i}].package_no"),
            &p.package_no,
            MAX_CODE,
        )?;
        if p.package_no.contains('/') {
            return Err(bad(format!("packages[{i}].package_no"), "may not hold `/`"));
        }
        if !numbers.insert(p.package_no.as_str()) {
            return Err(bad(format!("packages[{i}].package_no"), "appears twice"));
        }
        optional(&format!("packages[{i}].carrier"), &p.carrier, MAX_NAME)?;
        optional(&format!("packages[{i}].waybill"), &p.waybill, MAX_NAME)?;
        if p.items.is_empty() || p.items.len() > MAX_ITEMS {
            return Err(bad(
                format!("packages[{i}].items"),
                format!("must hold 1..={MAX_ITEMS} lines"),
            ));
        }
        for (j, it) in p.items.iter().enumerate() {
            let field = format!("packages[{i}].items[{j}]");
            let Some(&wanted) = ordered.get(it.sku.as_str()) else {
                return Err(bad(
                    format!("{field}.sku"),
                    "is not one of the order's items",
                ));
            };
            if it.qty == 0 {
                return Err(bad(format!("{field}.qty"), "must be at least 1"));
            }
            let sum = packed
                .entry(ordered.get_key_value(it.sku.as_str()).unwrap().0)
                .or_default();
            *sum += u64::from(it.qty);
            if *sum > wanted {
                return Err(bad(
                    format!("{field}.qty"),
                    format!("packs more of `{}` than the order holds ({wanted})", it.sku),
                ));
            }
        }
    }
    if let Some((sku, want)) = ordered
        .iter()
        .find(|(sku, want)| packed.get(*sku) != Some(want))
    {
        let got = packed.get(sku).copied().unwrap_or(0);
        return Err(bad(
            "packages",
            format!("hold {got} of `{sku}`, the order has {want}"),
        ));
    }
    Ok(())
}

/// Checks `notes` and `metadata` (an object of at most [`MAX_METADATA`] bytes encoded).
pub fn check_extras(
    notes: &Option<String>,
    metadata: &Option<serde_json::Map<String, serde_json::Value>>,
) -> Result<(), String> {
    if let Some(n) = notes
        && (n.len() > MAX_NOTES || n.chars().any(|c| c.is_control() && c != '\n'))
    {
        return Err(bad(
            "notes",
            format!("must be at most {MAX_NOTES} bytes of text"),
        ));
    }
    if let Some(m) = metadata {
        let len = serde_json::to_vec(m).map(|v| v.len()).unwrap_or(usize::MAX);
        if len > MAX_METADATA {
            return Err(bad(
                "metadata",
                format!("is {len} bytes encoded; at most {MAX_METADATA}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(sku: &str, qty: u32) -> Item {
        Item {
            sku: sku.into(),
            name: None,
            qty,
            weight_g: None,
            volume_cm3: None,
        }
    }

    fn pkg(no: &str, items: &[(&str, u32)]) -> NewPackage {
        NewPackage {
            package_no: no.into(),
            items: items
                .iter()
                .map(|(s, q)| PackedItem {
                    sku: (*s).into(),
                    qty: *q,
                })
                .collect(),
            carrier: None,
            waybill: None,
        }
    }

    #[test]
    fn packages_hold_every_item_exactly() {
        let items = [item("A", 2), item("B", 1)];
        assert!(
            check_goods(
                &items,
                &[pkg("P1", &[("A", 1)]), pkg("P2", &[("A", 1), ("B", 1)])]
            )
            .is_ok()
        );
        let more = check_goods(&items, &[pkg("P1", &[("A", 3), ("B", 1)])]).unwrap_err();
        assert!(more.contains("`packages[0].items[0].qty`"), "{more}");
        let less = check_goods(&items, &[pkg("P1", &[("A", 2)])]).unwrap_err();
        assert!(
            less.starts_with("`packages`") && less.contains("`B`"),
            "{less}"
        );
        let stranger = check_goods(&items, &[pkg("P1", &[("Z", 1)])]).unwrap_err();
        assert!(
            stranger.contains("`packages[0].items[0].sku`"),
            "{stranger}"
        );
        let twice = check_goods(
            &items,
            &[pkg("P", &[("A", 2), ("B", 1)]), pkg("P", &[("A", 0)])],
        );
        assert!(twice.unwrap_err().contains("`packages[1].package_no`"));
        assert!(check_goods(&items, &[]).is_ok(), "packages are optional");
    }

    #[test]
    fn bounds_name_the_field() {
        let many: Vec<Item> = (0..10_000).map(|i| item(&format!("S{i}"), 1)).collect();
        assert!(check_goods(&many, &[]).unwrap_err().starts_with("`items`"));
        let zero = check_goods(&[item("A", 0)], &[]).unwrap_err();
        assert!(zero.contains("`items[0].qty`"), "{zero}");
        let dup = check_goods(&[item("A", 1), item("A", 1)], &[]).unwrap_err();
        assert!(dup.contains("`items[1].sku`"), "{dup}");
        let long_sku = check_goods(&[item(&"x".repeat(1024), 1)], &[]).unwrap_err();
        assert!(long_sku.contains("`items[0].sku`"), "{long_sku}");
        let party = Party {
            name: "Li".into(),
            phone: Some("1".repeat(1024)),
            address: None,
            address_code: vec![],
        };
        assert!(
            check_party("recipient", &party)
                .unwrap_err()
                .contains("`recipient.phone`")
        );
        let coded = Party {
            phone: Some("+86 138-0013-8000".into()),
            address_code: vec![
                "44".into(),
                "4401".into(),
                "440106".into(),
                "440106001".into(),
            ],
            ..party.clone()
        };
        assert!(check_party("recipient", &coded).is_ok());
        let deep = Party {
            address_code: vec!["1".into(); 5],
            ..coded
        };
        assert!(
            check_party("sender", &deep)
                .unwrap_err()
                .contains("`sender.address_code`")
        );
        let mut meta = serde_json::Map::new();
        meta.insert("k".into(), "v".repeat(5 * 1024).into());
        assert!(
            check_extras(&None, &Some(meta))
                .unwrap_err()
                .starts_with("`metadata`")
        );
    }
}
