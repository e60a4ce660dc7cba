using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using HybridServing.Bench.Cli;

namespace HybridServing.Bench.Results;

/// <summary>
/// <c>--repeat N</c>: the command run N times, each in a fresh process (nothing warmed carries over), then every
/// target figure of those runs side by side with its min–max spread, so a headline figure comes with how much it
/// moves between reruns on the same machine.
/// </summary>
internal static partial class Repeat
{
    public const string Flag = "--repeat";

    /// <summary>Removes <c>--repeat N</c> from <paramref name="args"/>; N (2–10), or null when absent.</summary>
    public static int? Take(ref string[] args)
    {
        for (var i = 0; i < args.Length; i++)
        {
            string? value = null;
            var length = 1;
            if (args[i] == Flag)
            {
                if (i + 1 >= args.Length) throw new BenchUsageException($"{Flag}: expects a value (2-10)");
                value = args[i + 1];
                length = 2;
            }
            else if (args[i].StartsWith(Flag + "=", StringComparison.Ordinal))
            {
                value = args[i][(Flag.Length + 1)..];
            }
            if (value is null) continue;
            if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n is < 2 or > 10)
                throw new BenchUsageException($"{Flag}: '{value}' is not a number of runs from 2 to 10");
            args = [.. args[..i], .. args[(i + length)..]];
            return n;
        }
        return null;
    }

    public static async Task<int> RunAsync(string command, string[] args, int times, bool record)
    {
        var resultsDir = ResultsDir(args);
        var jsonPath = Path.Combine(resultsDir, command + ".json");
        var before = Runs(jsonPath).Count;
        var started = Stopwatch.StartNew();
        for (var i = 1; i <= times; i++)
        {
            Console.WriteLine($"== {command}: run {i} of {times}");
            var start = SelfStart();
            start.ArgumentList.Add(command);
            foreach (var a in args) start.ArgumentList.Add(a);
            if (record) start.ArgumentList.Add(Shared.BenchRun.RecordFlag);
            using var child = Process.Start(start) ?? throw new InvalidOperationException("the benchmark process did not start");
            await child.WaitForExitAsync();
            if (child.ExitCode != 0)
            {
                Console.Error.WriteLine($"error: run {i} of {times} exited with {child.ExitCode}; no spread reported");
                return child.ExitCode;
            }
        }
        var runs = Runs(jsonPath).Skip(before).ToList();
        if (runs.Count != times)
            throw new BenchUsageException($"{command}: expected {times} new runs in {jsonPath}, found {runs.Count} (does this command write a report?)");

        var markdown = Spread(command, args, times, runs, started.Elapsed);
        Console.WriteLine();
        Console.WriteLine(markdown);
        var path = Path.Combine(resultsDir, command + "-spread.md");
        if (!File.Exists(path)) File.WriteAllText(path, $"# {command}: spread over reruns\n\nEach section: one `--repeat` invocation, every target figure of its runs and their min–max.\n\n");
        File.AppendAllText(path, markdown);
        Console.WriteLine($"Spread appended to {path}");
        return 0;
    }

    /// <summary>The table: one row per target figure, a column per run, then min–max and how many runs met it.</summary>
    internal static string Spread(string command, IReadOnlyList<string> args, int times, IReadOnlyList<JsonNode> runs, TimeSpan wall)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"## {command} × {times} — {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm:ss} UTC\n\n");
        var given = string.Concat(args.Select(a => " " + a));
        sb.Append(CultureInfo.InvariantCulture, $"Command: `dotnet run -c Release --project bench -- {command}{given} {Flag} {times}`; {times} runs in {wall.TotalSeconds:0} s; {Shared.BenchRun.WallTime()}.\n\n");
        sb.Append("| figure | ").Append(string.Join(" | ", Enumerable.Range(1, times).Select(i => $"run {i}"))).Append(" | min–max | target | met |\n");
        sb.Append('|').Append(string.Concat(Enumerable.Repeat("---|", times + 4))).Append('\n');
        var figures = runs.SelectMany(r => r["targets"]!.AsArray()).Select(t => (string)t!["figure"]!).Distinct().ToList();
        foreach (var figure in figures)
        {
            var cells = runs.Select(r => r["targets"]!.AsArray().FirstOrDefault(t => (string?)t!["figure"] == figure)).ToList();
            var measured = cells.Select(c => (string?)c?["measured"] ?? "—").ToList();
            var numbers = measured.Select(FirstNumber).ToList();
            var spread = numbers.All(n => n is not null)
                ? MinMax(numbers.Select(n => n!.Value).ToList(), measured[0])
                : "—";
            var judged = cells.Where(c => c?["met"] is JsonValue v && v.TryGetValue<bool>(out _)).ToList();
            var met = judged.Count(c => c!["met"]!.GetValue<bool>());
            var target = (string?)cells.FirstOrDefault(c => c is not null)?["target"] ?? "";
            sb.Append(CultureInfo.InvariantCulture, $"| {figure} | {string.Join(" | ", measured)} | {spread} | {target} | {(judged.Count == 0 ? "n/a" : $"{met} of {judged.Count}")} |\n");
        }
        sb.Append('\n');
        return sb.ToString();
    }

    private static string MinMax(IReadOnlyList<double> values, string sample)
    {
        var unit = NumberPattern().Replace(sample, "", 1).Trim();
        var (min, max) = (values.Min(), values.Max());
        var digits = values.Select(v => v.ToString(CultureInfo.InvariantCulture)).Max(s => s.Contains('.') ? s.Length - s.IndexOf('.') - 1 : 0);
        var format = "F" + Math.Min(digits, 3).ToString(CultureInfo.InvariantCulture);
        return $"{min.ToString(format, CultureInfo.InvariantCulture)}–{max.ToString(format, CultureInfo.InvariantCulture)}{(unit.Length > 0 && unit.Length <= 12 ? " " + unit : "")}";
    }

    internal static double? FirstNumber(string text)
    {
        var m = NumberPattern().Match(text.Replace(",", "", StringComparison.Ordinal));
        return m.Success && double.TryParse(m.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : null;
    }

    [GeneratedRegex(@"[-+−]?\d+(\.\d+)?")]
    private static partial Regex NumberPattern();

    private static List<JsonNode> Runs(string jsonPath) =>
        File.Exists(jsonPath) && JsonNode.Parse(File.ReadAllText(jsonPath)) is JsonArray runs ? [.. runs.Where(r => r is not null).Select(r => r!)] : [];

    private static string ResultsDir(IReadOnlyList<string> args)
    {
        for (var i = 0; i < args.Count; i++)
        {
            if (args[i] == "--results" && i + 1 < args.Count) return args[i + 1];
            if (args[i].StartsWith("--results=", StringComparison.Ordinal)) return args[i]["--results=".Length..];
        }
        return RepoPaths.DefaultResults;
    }

    /// <summary>This harness again: its apphost, or <c>dotnet</c> with its dll.</summary>
    private static ProcessStartInfo SelfStart()
    {
        var path = Environment.ProcessPath ?? throw new InvalidOperationException("no process path to start the runs with");
        var start = new ProcessStartInfo(path) { UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(path) == "dotnet") start.ArgumentList.Add(typeof(Repeat).Assembly.Location);
        return start;
    }
}
