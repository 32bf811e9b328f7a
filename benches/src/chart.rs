//! The PNG bar chart: per workload, each tool's median time relative to rsync's (rsync = 1).
//! Drawn with plotters' bitmap backend; text uses the 8x8 bitmap font of `font8x8`, so no
//! system font is needed.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::measure::median;
use crate::workloads::Row;

const W: u32 = 1400;
const ROW_H: i32 = 22;
const LEFT: i32 = 430;
const RIGHT: i32 = 200;
const TOP: i32 = 60;

/// Writes `text` with its top-left corner at (x, y), each font pixel `scale` pixels wide.
fn text<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    x: i32,
    y: i32,
    s: &str,
    scale: i32,
    color: &RGBColor,
) -> Result<()> {
    for (i, ch) in s.chars().enumerate() {
        let glyph = font8x8::legacy::BASIC_LEGACY
            .get(ch as usize)
            .copied()
            .unwrap_or([0; 8]);
        let gx = x + i as i32 * 8 * scale;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) != 0 {
                    let px = gx + col * scale;
                    let py = y + row as i32 * scale;
                    for dx in 0..scale {
                        for dy in 0..scale {
                            area.draw_pixel((px + dx, py + dy), color)
                                .map_err(|e| anyhow!("draw: {e}"))?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn tool_color(tool: &str) -> RGBColor {
    if tool == "opsync" || tool == "opsync -c" || tool == "opsync verify" {
        RGBColor(31, 119, 180)
    } else if tool.starts_with("opsync") {
        RGBColor(100, 170, 220)
    } else if tool.starts_with("rsync") {
        RGBColor(214, 39, 40)
    } else if tool == "cp -a" {
        RGBColor(120, 120, 120)
    } else {
        RGBColor(44, 160, 44)
    }
}

/// Draws one bar per row, grouped by workload, length = median / rsync's median.
pub fn draw(rows: &[Row], path: &Path) -> Result<()> {
    let bars: Vec<(&Row, f64, f64)> = rows
        .iter()
        .filter(|r| !r.samples.is_empty())
        .filter_map(|r| {
            let m = median(&r.samples.iter().map(|s| s.seconds).collect::<Vec<_>>());
            let base = rows
                .iter()
                .find(|x| x.workload == r.workload && x.tool.starts_with("rsync"))?;
            let b = median(&base.samples.iter().map(|s| s.seconds).collect::<Vec<_>>());
            Some((r, m, m / b))
        })
        .collect();
    let groups = bars
        .iter()
        .map(|b| &b.0.workload)
        .collect::<std::collections::BTreeSet<_>>()
        .len() as i32;
    let h = (TOP + 40 + bars.len() as i32 * ROW_H + groups * 30) as u32;
    let root = BitMapBackend::new(path, (W, h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("draw: {e}"))?;
    let black = RGBColor(0, 0, 0);
    text(
        &root,
        10,
        10,
        "opsync vs rsync: median time relative to rsync (rsync = 1.0, shorter is faster)",
        2,
        &black,
    )?;
    let max = bars.iter().map(|b| b.2).fold(1.5f64, f64::max).min(4.0);
    let span = (W as i32 - LEFT - RIGHT) as f64;
    let x_of = |v: f64| LEFT + (v.min(max) / max * span) as i32;
    let grey = RGBColor(200, 200, 200);
    let bottom = h as i32 - 20;
    for tick in [0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0] {
        if tick > max {
            continue;
        }
        let x = x_of(tick);
        root.draw(&PathElement::new(vec![(x, TOP), (x, bottom)], grey))
            .map_err(|e| anyhow!("draw: {e}"))?;
        text(&root, x - 12, TOP - 16, &format!("{tick}"), 1, &black)?;
    }
    let mut y = TOP + 10;
    let mut last = "";
    for (r, m, rel) in &bars {
        if r.workload != last {
            y += 10;
            text(&root, 10, y, &r.workload, 1, &black)?;
            y += 16;
            last = &r.workload;
        }
        text(&root, 30, y + 5, &r.tool, 1, &black)?;
        root.draw(&Rectangle::new(
            [(LEFT, y), (x_of(*rel), y + ROW_H - 6)],
            tool_color(&r.tool).filled(),
        ))
        .map_err(|e| anyhow!("draw: {e}"))?;
        text(
            &root,
            x_of(*rel) + 6,
            y + 4,
            &format!("{m:.3} s ({rel:.2})"),
            1,
            &black,
        )?;
        y += ROW_H;
    }
    root.present()
        .map_err(|e| anyhow!("write {}: {e}", path.display()))?;
    Ok(())
}
