using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace HybridServing.Bench.Results;

/// <summary>One target from docs/benchmarks.md and whether this run met it (null = not measured).</summary>
internal sealed record TargetCheck(string Figure, string Measured, string Target, bool? Met);

/// <summary>A table of one run: a caption, column headers, rows of formatted cells.</summary>
internal sealed record ResultTable(string Caption, IReadOnlyList<string> Headers, List<IReadOnlyList<string>> Rows)
{
    public ResultTable(string caption, params string[] headers) : this(caption, headers, []) { }

    public void Add(params string[] cells) => Rows.Add(cells);
}

/// <summary>
/// What one benchmark run produced. Printed to the console, appended to
/// <c>bench/results/&lt;command&gt;.md</c> (a section per run) and to <c>&lt;command&gt;.json</c> (an array of runs).
/// </summary>
internal sealed class BenchReport(string command, IReadOnlyDictionary<string, string> parameters)
{
    public string Command { get; } = command;
    public DateTimeOffset Started { get; } = DateTimeOffset.UtcNow;
    public List<ResultTable> Tables { get; } = [];
    public List<TargetCheck> Targets { get; } = [];
    public List<string> Notes { get; } = [];

    /// <summary>Raw figures for machines (the JSON file); the tables are for people.</summary>
    public JsonObject Data { get; } = [];

    public ResultTable Table(string caption, params string[] headers)
    {
        var t = new ResultTable(caption, headers);
        Tables.Add(t);
        return t;
    }

    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"## {Command} — {Started:yyyy-MM-dd HH:mm:ss} UTC\n\n");
        sb.Append(CultureInfo.InvariantCulture, $"Machine: {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, .NET {Environment.Version}; commit {GitCommit() ?? "unknown"}.\n");
        var args = string.Join("", parameters.Select(p => p.Value.Length == 0 ? $" {p.Key}" : $" {p.Key} {p.Value}"));
        sb.Append(CultureInfo.InvariantCulture, $"Command: `dotnet run -c Release --project bench -- {Command}{args}`; {HybridServing.Bench.Shared.BenchRun.WallTime()}.\n\n");
        foreach (var table in Tables)
        {
            sb.Append(CultureInfo.InvariantCulture, $"**{table.Caption}**\n\n");
            sb.Append("| ").Append(string.Join(" | ", table.Headers)).Append(" |\n");
            sb.Append('|').Append(string.Concat(table.Headers.Select(_ => "---|"))).Append('\n');
            foreach (var row in table.Rows) sb.Append("| ").Append(string.Join(" | ", row)).Append(" |\n");
            sb.Append('\n');
        }
        if (Targets.Count > 0)
        {
            sb.Append("**Targets (docs/benchmarks.md)**\n\n| figure | measured | target | met |\n|---|---|---|---|\n");
            foreach (var t in Targets)
                sb.Append(CultureInfo.InvariantCulture, $"| {t.Figure} | {t.Measured} | {t.Target} | {(t.Met is null ? "n/a" : t.Met.Value ? "yes" : "**no**")} |\n");
            sb.Append('\n');
        }
        foreach (var note in Notes) sb.Append("- ").Append(note).Append('\n');
        if (Notes.Count > 0) sb.Append('\n');
        return sb.ToString();
    }

    public JsonObject ToJson()
    {
        var o = new JsonObject
        {
            ["command"] = Command,
            ["started"] = Started.ToString("O", CultureInfo.InvariantCulture),
            ["machine"] = new JsonObject
            {
                ["cores"] = Environment.ProcessorCount,
                ["os"] = RuntimeInformation.OSDescription,
                ["dotnet"] = Environment.Version.ToString(),
                ["commit"] = GitCommit(),
            },
            ["parameters"] = new JsonObject(parameters.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)JsonValue.Create(p.Value)))),
            ["targets"] = new JsonArray([.. Targets.Select(t => (JsonNode)new JsonObject
            {
                ["figure"] = t.Figure, ["measured"] = t.Measured, ["target"] = t.Target, ["met"] = t.Met,
            })]),
            ["data"] = Data.DeepClone(),
            ["notes"] = new JsonArray([.. Notes.Select(n => (JsonNode)JsonValue.Create(n)!)]),
        };
        return o;
    }

    /// <summary>Prints the report and appends it to the results folder; returns the two file paths.</summary>
    public (string Markdown, string Json) Write(string resultsDir)
    {
        var markdown = ToMarkdown();
        Console.WriteLine();
        Console.WriteLine(markdown);
        Directory.CreateDirectory(resultsDir);
        var md = Path.Combine(resultsDir, Command + ".md");
        if (!File.Exists(md)) File.WriteAllText(md, $"# {Command} results\n\nEach run appends a section (newest last). Absolute times depend on the machine; compare the ratios.\n\n");
        File.AppendAllText(md, markdown);

        var jsonPath = Path.Combine(resultsDir, Command + ".json");
        var runs = File.Exists(jsonPath) && JsonNode.Parse(File.ReadAllText(jsonPath)) is JsonArray existing ? existing : [];
        runs.Add(ToJson());
        File.WriteAllText(jsonPath, runs.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        Console.WriteLine($"Results appended to {md} and {jsonPath}");
        return (md, jsonPath);
    }

    private static string? _commit;

    private static string? GitCommit()
    {
        if (_commit is not null) return _commit;
        try
        {
            var psi = new ProcessStartInfo("git", "rev-parse --short HEAD")
            {
                RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
                WorkingDirectory = RepoPaths.Root,
            };
            using var p = Process.Start(psi)!;
            var text = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit(5000);
            _commit = p.ExitCode == 0 && text.Length > 0 ? text + (IsDirty() ? "+changes" : "") : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            _commit = null;
        }
        return _commit;
    }

    private static bool IsDirty()
    {
        var psi = new ProcessStartInfo("git", "status --porcelain --untracked-files=no")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = RepoPaths.Root,
        };
        using var p = Process.Start(psi)!;
        var text = p.StandardOutput.ReadToEnd();
        p.WaitForExit(5000);
        return text.Trim().Length > 0;
    }
}

/// <summary>Where the repository and the built services are, found from this assembly's location.</summary>
internal static class RepoPaths
{
    public static string Root { get; } = FindRoot();

    /// <summary>Set by <c>--record</c>: results go to the tracked <c>bench/results/</c> instead of the ignored <c>bench/results/local/</c>.</summary>
    public static bool Record { get; set; }

    public static string DefaultResults => HybridServing.Bench.Shared.BenchRun.ResultsRoot(Root, Record);

    /// <summary>Release or Debug: the configuration this harness was built in (its bin folder says).</summary>
    public static string Configuration { get; } =
        new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent?.Name ?? "Release";

    /// <summary>A sibling service's built dll, e.g. <c>Gateway/bin/Release/net10.0/HybridServing.Gateway.dll</c>.</summary>
    public static string ServiceDll(string project)
    {
        var tfm = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Name;
        var path = Path.Combine(Root, project, "bin", Configuration, tfm, $"HybridServing.{project}.dll");
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path} is missing: build the harness with its references (dotnet build -c {Configuration} bench).", path);
        return path;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "HybridServing.sln"))) return dir.FullName;
        return Directory.GetCurrentDirectory();
    }
}
