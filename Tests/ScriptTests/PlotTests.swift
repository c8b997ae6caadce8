import Testing
import Script

/// A scatter of several one-point series (a method per series) labels its points: in the
/// terminal each point is its series' key letter, keyed under the plot; in SVG each point carries
/// its label. One series, or lines, keep the plain form.
@Test func scatterLabelsEachSeriesPoint() throws {
    let p = Plot(series: [Plot.Series(x: [33.3], y: [0.93], label: "HAWQ-V3"), Plot.Series(x: [12.1], y: [0.90], label: "XNOR-Net")],
                 style: .scatter, title: "t", xLabel: "µJ", yLabel: "accuracy")
    let text = p.text()
    #expect(text.contains("a HAWQ-V3 · b XNOR-Net"))
    let rows = text.split(separator: "\n")
    let plotted = rows.filter { $0.contains("┤") }
    #expect(plotted.contains { $0.contains("a") } && plotted.contains { $0.contains("b") })
    let svg = p.svg()
    #expect(svg.contains(">HAWQ-V3</text>") && svg.contains(">XNOR-Net</text>"))
    let line = Plot(series: p.series, style: .line, title: "", xLabel: "", yLabel: "")
    #expect(!line.text().contains("a HAWQ-V3"))
}
