using System.Text.Json;
using System.Text.RegularExpressions;

namespace HybridServing.AppHost.Tests;

/// <summary>
/// The README's commands that run against the local stack, and what the README says they print. A block is
/// marked by the info string <c>bash readme-test</c>; in it a command is a line that is not a comment (with its
/// <c>\</c> continuations), and a <c>#=&gt;</c> comment under it holds what it must print, as clauses separated by
/// <c>;</c>:
/// <c>status N</c> (every HTTP response of the command had status N), <c>header NAME</c> (and carried that header),
/// <c>json KEY KEY.SUB …</c> (stdout is a JSON object with these keys), <c>sse</c> (stdout is server-sent events
/// ending with <c>data: [DONE]</c>), <c>prints TEXT</c> (stdout contains TEXT), <c>stderr TEXT</c>,
/// <c>exit N</c> (default 0). Other comments are prose for the reader.
/// </summary>
internal static partial class ReadmeCommands
{
    public const string InfoString = "bash readme-test";
    public const string ExpectPrefix = "#=>";

    public sealed record Command(int Line, string Text, IReadOnlyList<string> Expect);

    public sealed record Response(int Status, IReadOnlySet<string> Headers);

    public sealed record Outcome(int ExitCode, string Stdout, string Stderr, IReadOnlyList<Response> Responses);

    public static IReadOnlyList<Command> Parse(string markdown)
    {
        var lines = markdown.Split('\n');
        var commands = new List<Command>();
        var inBlock = false;
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].TrimEnd('\r');
            if (line.StartsWith("```", StringComparison.Ordinal))
            {
                inBlock = !inBlock && line[3..].Trim() == InfoString;
                continue;
            }
            if (!inBlock) continue;
            var trimmed = line.Trim();
            if (trimmed.StartsWith(ExpectPrefix, StringComparison.Ordinal))
            {
                if (commands.Count == 0 || commands[^1].Expect.Count > 0)
                    throw new FormatException($"README.md:{i + 1}: '{ExpectPrefix}' without a command above it");
                var clauses = trimmed[ExpectPrefix.Length..].Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                foreach (var clause in clauses) _ = Keyword(clause, i + 1);
                commands[^1] = commands[^1] with { Expect = clauses };
                continue;
            }
            if (trimmed.Length == 0 || trimmed.StartsWith('#')) continue;
            var start = i;
            var text = line;
            while (text.EndsWith('\\') && i + 1 < lines.Length) text += "\n" + lines[++i].TrimEnd('\r');
            commands.Add(new Command(start + 1, text, []));
        }
        if (inBlock) throw new FormatException("README.md: a readme-test block is not closed");
        return commands;
    }

    private static string Keyword(string clause, int line)
    {
        var keyword = clause.Split(' ', 2)[0];
        return keyword is "status" or "header" or "json" or "sse" or "prints" or "stderr" or "exit"
            ? keyword
            : throw new FormatException($"README.md:{line}: '{clause}' is not an expectation (status, header, json, sse, prints, stderr, exit)");
    }

    /// <summary>
    /// The README assumes the default ports (base 8000); the test's stack runs on a free block from
    /// <paramref name="portBase"/>: 80NN after a host, <c>--port</c> or <c>port</c> becomes base + NN.
    /// </summary>
    public static string OnPortBase(string text, int portBase) =>
        PortPattern().Replace(text, m => m.Groups["pre"].Value + (portBase + int.Parse(m.Groups["offset"].Value, System.Globalization.CultureInfo.InvariantCulture)));

    [GeneratedRegex(@"(?<pre>(?:127\.0\.0\.1:|localhost:|--port[ =]|port ))80(?<offset>\d\d)\b")]
    private static partial Regex PortPattern();

    /// <summary>Every way the outcome differs from what the README says; empty when it prints what it should.</summary>
    public static IReadOnlyList<string> Failures(Command command, Outcome outcome)
    {
        var failures = new List<string>();
        var exit = 0;
        foreach (var clause in command.Expect)
        {
            var parts = clause.Split(' ', 2);
            var arg = parts.Length > 1 ? parts[1].Trim() : "";
            switch (parts[0])
            {
                case "exit":
                    exit = int.Parse(arg, System.Globalization.CultureInfo.InvariantCulture);
                    break;
                case "status":
                    var want = int.Parse(arg, System.Globalization.CultureInfo.InvariantCulture);
                    if (outcome.Responses.Count == 0) failures.Add($"status {want}: no HTTP response was recorded");
                    foreach (var r in outcome.Responses.Where(r => r.Status != want)) failures.Add($"status {want}: got {r.Status}");
                    break;
                case "header":
                    if (!outcome.Responses.Any(r => r.Headers.Contains(arg.ToLowerInvariant())))
                        failures.Add($"header {arg}: not in the response headers ({string.Join(", ", outcome.Responses.SelectMany(r => r.Headers).Distinct())})");
                    break;
                case "json":
                    failures.AddRange(JsonFailures(outcome.Stdout, arg.Split(' ', StringSplitOptions.RemoveEmptyEntries)));
                    break;
                case "sse":
                    var events = outcome.Stdout.Split('\n').Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).ToList();
                    if (events.Count < 2 || events[^1].TrimEnd() != "data: [DONE]")
                        failures.Add($"sse: not server-sent events ending with 'data: [DONE]' ({events.Count} data lines)");
                    else if (events.SkipLast(1).Any(e => !IsJson(e["data: ".Length..])))
                        failures.Add("sse: an event's data is not JSON");
                    break;
                case "prints":
                    if (!outcome.Stdout.Contains(arg, StringComparison.Ordinal)) failures.Add($"prints {arg}: not in stdout");
                    break;
                case "stderr":
                    if (!outcome.Stderr.Contains(arg, StringComparison.Ordinal)) failures.Add($"stderr {arg}: not in stderr");
                    break;
            }
        }
        if (outcome.ExitCode != exit) failures.Insert(0, $"exit code {outcome.ExitCode}, expected {exit}");
        return failures;
    }

    private static IEnumerable<string> JsonFailures(string stdout, IEnumerable<string> paths)
    {
        JsonElement root;
        try
        {
            root = JsonDocument.Parse(stdout).RootElement;
        }
        catch (JsonException e)
        {
            return [$"json: stdout is not JSON ({e.Message})"];
        }
        var missing = new List<string>();
        foreach (var path in paths)
        {
            var node = root;
            foreach (var key in path.Split('.'))
            {
                if (node.ValueKind != JsonValueKind.Object || !node.TryGetProperty(key, out node)) { missing.Add($"json: no key {path}"); break; }
            }
        }
        return missing;
    }

    private static bool IsJson(string text)
    {
        try
        {
            using var _ = JsonDocument.Parse(text);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>The responses a curl run with <c>--dump-header FILE</c> wrote: the last status block of each file.</summary>
    public static Response ParseHeaderDump(string text)
    {
        var blocks = text.Replace("\r", "", StringComparison.Ordinal).Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Where(b => b.StartsWith("HTTP/", StringComparison.Ordinal)).ToList();
        if (blocks.Count == 0) return new Response(0, new HashSet<string>());
        var lines = blocks[^1].Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var status = int.Parse(lines[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        var headers = lines.Skip(1).Select(l => l.Split(':', 2)[0].Trim().ToLowerInvariant()).ToHashSet();
        return new Response(status, headers);
    }
}
