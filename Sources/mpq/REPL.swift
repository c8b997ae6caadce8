import CEdit
import Foundation
import Kernels
import Network
import Script
import Tensors
import Runtime

/// The session Tab completes against (libedit's callback is a C function: no captures).
nonisolated(unsafe) var completionSession: Session?

/// libedit's completion generator: called with state 0 first, then 1, 2, … until nil.
private func completionGenerator(_ text: UnsafePointer<CChar>?, _ state: Int32) -> UnsafeMutablePointer<CChar>? {
    struct Static { nonisolated(unsafe) static var matches: [String] = []; nonisolated(unsafe) static var index = 0 }
    if state == 0 {
        let prefix = text.map { String(cString: $0) } ?? ""
        // The line up to the cursor: inside `solver: "gr` Tab offers the declared options.
        let line = rl_line_buffer.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: Int(max(0, rl_point))), as: UTF8.self) } ?? ""
        if let choices = completionSession?.interpreter.choiceCompletions(before: line) {
            Static.matches = choices
        } else {
            Static.matches = completionSession?.interpreter.completions(for: prefix, commands: REPL.commands) ?? []
        }
        Static.index = 0
    }
    guard Static.index < Static.matches.count else { return nil }
    defer { Static.index += 1 }
    return strdup(Static.matches[Static.index])
}

/// Characters typed at the prompt, read for libedit. The read waits in slices of 50 ms and
/// looks at the interrupt flag between them (the SIGINT may land on any thread, so the read
/// itself is not reliably interrupted): a Ctrl-C becomes ^U (kill the line) and Return, and the
/// loop, seeing the flag, discards the input and prompts afresh.
private func promptGetc(_ file: UnsafeMutablePointer<FILE>?) -> Int32 {
    struct Pending { nonisolated(unsafe) static var queue: [UInt8] = [] }
    if !Pending.queue.isEmpty { return Int32(Pending.queue.removeFirst()) }
    let fd = file.map { fileno($0) } ?? 0
    while true {
        if Interrupt.isRequested {
            Pending.queue = [0x0d]
            return 0x15
        }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&p, 1, 50)
        if ready == 0 || (ready < 0 && errno == EINTR) { continue }
        var c: UInt8 = 0
        let n = read(fd, &c, 1)
        if n == 1 { return Int32(c) }
        if n < 0 && errno == EINTR { continue }
        return EOF
    }
}

/// The prompt: libedit line editing, history kept in ~/.mpq_history, Tab completion, input
/// continued while brackets or a block are open, `?name` help and `:commands`.
struct REPL {
    let session: Session
    var interpreter: Interpreter { session.interpreter }
    var history: String { (ProcessInfo.processInfo.environment["MPQ_HISTORY"] ?? (NSHomeDirectory() + "/.mpq_history")) }

    static let commands = [":help", ":load", ":save", ":time", ":vars", ":reset", ":quit"]

    func loop() {
        completionSession = session
        rl_completion_entry_function = completionGenerator
        rl_getc_function = promptGetc
        // libedit would install its own SIGINT handler around each read; ours must see the signal.
        rl_catch_signals = 0
        read_history(history)
        print("mpq 0.1.0 — ?name for help on a builtin, :help for commands, Ctrl-D to quit")
        var accepted: [String] = []
        var buffer = ""
        // What :reset restores: the stdlib's functions and whatever the session started with.
        let baseline = interpreter.globals.values
        while true {
            Interrupt.clear()
            let raw = readline(buffer.isEmpty ? "mpq> " : "...  ")
            // Ctrl-C at the prompt drops what was typed (this line and any open block) and
            // gives a fresh prompt, the session intact; only end of input (Ctrl-D) ends it.
            if Interrupt.isRequested {
                free(raw)
                buffer = ""
                Interrupt.clear()
                continue
            }
            guard let raw else {
                if !buffer.isEmpty { buffer = ""; print(); continue }
                print()
                break
            }
            let line = String(cString: raw)
            free(raw)
            if buffer.isEmpty && line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if buffer.isEmpty && (trimmed.hasPrefix(":") || trimmed.hasPrefix("?")) {
                add_history(line)
                write_history(history)
                if !command(trimmed, &accepted, baseline: baseline) { break }
                continue
            }
            if buffer.isEmpty, ["exit", "quit", "exit()", "quit()"].contains(trimmed),
               interpreter.globals.lookup(String(trimmed.prefix { $0 != "(" })) == nil {
                print("to leave mpq, press Ctrl-D or type :quit")
                continue
            }
            buffer += buffer.isEmpty ? line : "\n" + line
            // Keep reading while the input ends inside an open bracket, block or string.
            if Self.isIncomplete(buffer) { continue }
            add_history(buffer)
            write_history(history)
            if evaluate(buffer) { accepted.append(buffer) }
            buffer = ""
        }
    }

    /// A syntax error at the very end of the input means "keep reading".
    static func isIncomplete(_ source: String) -> Bool {
        do { _ = try Parser.parse(source); return false } catch let e as ScriptError {
            return e.message.hasSuffix("found end of input") || e.message.hasPrefix("unterminated interpolation")
        } catch { return false }
    }

    /// Runs one input, showing values and errors; true when it succeeded.
    @discardableResult
    func evaluate(_ source: String) -> Bool {
        do {
            try interpreter.run(source, show: true)
            return true
        } catch let e as ScriptError {
            FileHandle.standardError.write(Data((e.render(source: source, file: "<prompt>") + "\n").utf8))
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        }
        return false
    }

    /// `:command` and `?name`. Returns false to quit.
    func command(_ line: String, _ accepted: inout [String], baseline: [String: Value] = [:]) -> Bool {
        if line.hasPrefix("?") {
            let name = line.dropFirst().trimmingCharacters(in: .whitespaces)
            evaluate(name.isEmpty ? "help()" : "help(\"\(name)\")")
            return true
        }
        let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
        let arg = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""
        switch parts[0] {
        case ":quit", ":q": return false
        case ":help", ":h":
            print("""
                :help            this list          ?name        help on a builtin (also help("name"))
                :load FILE       run a script here  :save FILE   write this session's successful inputs as a script
                :time EXPR       evaluate and time  :vars        variables and their types
                :reset           forget variables   :quit        leave (also Ctrl-D)
                """)
            evaluate("help()")
        case ":vars":
            let vars = interpreter.globals.values
            for name in vars.keys.sorted() {
                let v = vars[name]!
                let text = v.shown
                print("\(name): \(v.typeName) = \(text.count > 60 ? String(text.prefix(60)) + "…" : text)")
            }
        case ":reset":
            interpreter.globals.removeAll()
            for (name, value) in baseline { interpreter.globals.define(name, value) }
            accepted.removeAll()
            print("variables cleared (the stdlib stays)")
        case ":load":
            let source: String
            do { source = try readScript(arg) } catch { print("error: \(error)"); return true }
            do { try interpreter.run(source) } catch let e as ScriptError {
                FileHandle.standardError.write(Data((e.render(source: source, file: arg) + "\n").utf8))
            } catch { print("error: \(error)") }
        case ":save":
            guard !arg.isEmpty else { print("error: expected a file name after :save"); return true }
            do {
                try FileIO.writeAtomically(Array((accepted.joined(separator: "\n") + "\n").utf8), to: arg)
                print("saved \(accepted.count) inputs to \(arg)")
            } catch { print("error: \(error)") }
        case ":time":
            let start = Date()
            if evaluate(arg) { accepted.append(arg) }
            print(String(format: "%.3f s", Date().timeIntervalSince(start)))
        default:
            let near = Self.commands.min { editDistance($0, parts[0]) < editDistance($1, parts[0]) } ?? ":help"
            print("unknown command \(parts[0]); did you mean \(near)? (:help lists them)")
        }
        return true
    }

}
