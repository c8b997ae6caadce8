import Foundation

/// A line or scatter plot: drawn with Unicode braille in a terminal, as SVG in notebooks.
public struct Plot: Sendable {
    public enum Style: String, Sendable { case line, scatter }
    public struct Series: Sendable {
        public var x: [Double], y: [Double]
        public var label: String
        public init(x: [Double], y: [Double], label: String) { self.x = x; self.y = y; self.label = label }
    }
    public var series: [Series]
    public var style: Style
    public var title: String
    public var xLabel: String, yLabel: String
    public init(series: [Series], style: Style, title: String = "", xLabel: String = "", yLabel: String = "") {
        self.series = series; self.style = style; self.title = title; self.xLabel = xLabel; self.yLabel = yLabel
    }

    var bounds: (x0: Double, x1: Double, y0: Double, y1: Double) {
        let xs = series.flatMap(\.x).filter(\.isFinite), ys = series.flatMap(\.y).filter(\.isFinite)
        var (x0, x1) = (xs.min() ?? 0, xs.max() ?? 1), (y0, y1) = (ys.min() ?? 0, ys.max() ?? 1)
        if x0 == x1 { x0 -= 0.5; x1 += 0.5 }
        if y0 == y1 { y0 -= 0.5; y1 += 0.5 }
        return (x0, x1, y0, y1)
    }

    /// Braille cells give 2×4 dots per character: a 60×16 character plot has 120×64 dots.
    public func text(width: Int = 60, height: Int = 16) -> String {
        let (x0, x1, y0, y1) = bounds
        let dotsX = width * 2, dotsY = height * 4
        var grid = [[UInt8]](repeating: [UInt8](repeating: 0, count: width), count: height)
        func dot(_ px: Int, _ py: Int) {
            guard px >= 0, px < dotsX, py >= 0, py < dotsY else { return }
            let bits: [[UInt8]] = [[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]]
            grid[py / 4][px / 2] |= bits[py % 4][px % 2]
        }
        func project(_ x: Double, _ y: Double) -> (Int, Int) {
            (Int(((x - x0) / (x1 - x0) * Double(dotsX - 1)).rounded()), Int(((y1 - y) / (y1 - y0) * Double(dotsY - 1)).rounded()))
        }
        for s in series {
            let pts = zip(s.x, s.y).filter { $0.0.isFinite && $0.1.isFinite }.map { project($0.0, $0.1) }
            for (i, p) in pts.enumerated() {
                dot(p.0, p.1)
                if style == .line, i + 1 < pts.count {
                    let q = pts[i + 1], steps = max(abs(q.0 - p.0), abs(q.1 - p.1), 1)
                    for t in 0...steps { dot(p.0 + (q.0 - p.0) * t / steps, p.1 + (q.1 - p.1) * t / steps) }
                }
            }
        }
        // Labelled points (a scatter of several series): each series' points drawn as its key
        // letter, the keys listed under the plot.
        var marks: [Int: Character] = [:]
        if labelsPoints {
            for (i, s) in series.enumerated() {
                for p in zip(s.x, s.y).filter({ $0.0.isFinite && $0.1.isFinite }).map({ project($0.0, $0.1) }) {
                    marks[(p.1 / 4) * width + p.0 / 2] = Self.key(i)
                }
            }
        }
        let yTop = Value.format((y1 * 1e4).rounded() / 1e4), yBottom = Value.format((y0 * 1e4).rounded() / 1e4)
        let pad = max(yTop.count, yBottom.count)
        var lines: [String] = []
        if !title.isEmpty { lines.append(String(repeating: " ", count: pad + 2) + title) }
        for (r, row) in grid.enumerated() {
            let label = r == 0 ? yTop : r == height - 1 ? yBottom : ""
            let cells = String(row.enumerated().map { c, bits in marks[r * width + c] ?? Character(Unicode.Scalar(0x2800 + UInt32(bits))!) })
            lines.append(label.padding(toLength: pad, withPad: " ", startingAt: 0) + " ┤" + cells)
        }
        let xl = Value.format((x0 * 1e4).rounded() / 1e4), xr = Value.format((x1 * 1e4).rounded() / 1e4)
        lines.append(String(repeating: " ", count: pad) + " └" + String(repeating: "─", count: width))
        lines.append(String(repeating: " ", count: pad + 2) + xl + String(repeating: " ", count: max(1, width - xl.count - xr.count)) + xr)
        if !xLabel.isEmpty || !yLabel.isEmpty { lines.append(String(repeating: " ", count: pad + 2) + "x: \(xLabel)  y: \(yLabel)") }
        if labelsPoints {
            var line = ""
            for (i, s) in series.enumerated() {
                let entry = "\(Self.key(i)) \(s.label)"
                if !line.isEmpty && line.count + entry.count + 3 > width { lines.append(String(repeating: " ", count: pad + 2) + line); line = "" }
                line += (line.isEmpty ? "" : " · ") + entry
            }
            if !line.isEmpty { lines.append(String(repeating: " ", count: pad + 2) + line) }
        }
        return lines.joined(separator: "\n")
    }

    /// A scatter of several series labels its points (one method per series, say).
    public var labelsPoints: Bool { style == .scatter && series.count > 1 }

    /// The key letter of series i in a labelled scatter: a…z, then A…Z, then *.
    static func key(_ i: Int) -> Character {
        i < 26 ? Character(Unicode.Scalar(97 + UInt8(i))) : i < 52 ? Character(Unicode.Scalar(65 + UInt8(i - 26))) : "*"
    }

    public func svg(width: Double = 480, height: Double = 300) -> String {
        let (x0, x1, y0, y1) = bounds
        let left = 56.0, right = 16.0, top = title.isEmpty ? 16.0 : 32.0, bottom = 40.0
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * (width - left - right) }
        func py(_ y: Double) -> Double { top + (y1 - y) / (y1 - y0) * (height - top - bottom) }
        func esc(_ s: String) -> String { s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;") }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"]
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
        if !title.isEmpty { out += "<text x=\"\(f(width / 2))\" y=\"18\" text-anchor=\"middle\" font-size=\"13\">\(esc(title))</text>" }
        out += "<path d=\"M\(f(left)),\(f(top))V\(f(height - bottom))H\(f(width - right))\" fill=\"none\" stroke=\"#444\"/>"
        for t in 0...4 {
            let yv = y0 + (y1 - y0) * Double(t) / 4, xv = x0 + (x1 - x0) * Double(t) / 4
            out += "<text x=\"\(f(left - 4))\" y=\"\(f(py(yv) + 4))\" text-anchor=\"end\">\(esc(Value.format((yv * 1e4).rounded() / 1e4)))</text>"
            out += "<text x=\"\(f(px(xv)))\" y=\"\(f(height - bottom + 14))\" text-anchor=\"middle\">\(esc(Value.format((xv * 1e4).rounded() / 1e4)))</text>"
        }
        if !xLabel.isEmpty { out += "<text x=\"\(f((left + width - right) / 2))\" y=\"\(f(height - 6))\" text-anchor=\"middle\">\(esc(xLabel))</text>" }
        if !yLabel.isEmpty { out += "<text x=\"12\" y=\"\(f((top + height - bottom) / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 12 \(f((top + height - bottom) / 2)))\">\(esc(yLabel))</text>" }
        for (i, s) in series.enumerated() {
            let color = colors[i % colors.count]
            let pts = zip(s.x, s.y).filter { $0.0.isFinite && $0.1.isFinite }
            if style == .line {
                out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\"" + pts.map { "\(f(px($0.0))),\(f(py($0.1)))" }.joined(separator: " ") + "\"/>"
            } else {
                for p in pts {
                    out += "<circle cx=\"\(f(px(p.0)))\" cy=\"\(f(py(p.1)))\" r=\"2.5\" fill=\"\(color)\"/>"
                    if labelsPoints {
                        // Labels of points in the right half end at the point, so they stay inside.
                        let right = px(p.0) > width / 2
                        out += "<text x=\"\(f(px(p.0) + (right ? -4 : 4)))\" y=\"\(f(py(p.1) - 4))\" text-anchor=\"\(right ? "end" : "start")\" fill=\"\(color)\" font-size=\"10\">\(esc(s.label))</text>"
                    }
                }
            }
            if series.count > 1 && !labelsPoints { out += "<text x=\"\(f(width - right - 4))\" y=\"\(f(top + 14 * Double(i + 1)))\" text-anchor=\"end\" fill=\"\(color)\">\(esc(s.label))</text>" }
        }
        return out + "</svg>"
    }
}
