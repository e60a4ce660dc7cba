using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using HybridServing.LiveValidation.Comparison;
using HybridServing.LiveValidation.Configuration;

namespace HybridServing.LiveValidation.Reporting;

/// <summary>Everything one invocation measured, and its rendering as results.md and results.json.</summary>
internal sealed record ValidationReport(
    ValidationOptions Options,
    string Command,
    string Workload,
    long BytesPerRank,
    IReadOnlyList<Cell> Cells,
    IReadOnlyList<RankingCheck> Rankings,
    Agreement Agreement,
    double StartupSeconds,
    double WallSeconds,
    string LoadAverage)
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public int CellsWithin(Func<RunFigures, double> figure) => Cells.Count(c => Agreement.Within(figure(c.Live), figure(c.Simulated)));

    public string Markdown()
    {
        var o = Options;
        var md = new StringBuilder();
        md.AppendLine("# Live validation: the live stack against the cluster simulator").AppendLine();
        md.AppendLine($"Workload (both sides): {Workload}. Adapters: q_proj/v_proj PEFT files for Llama-3.1-8B, {BytesPerRank / 1e6:0.###} MB per unit of rank (the simulator charges the same sizes). " +
            $"Live: {o.Engines} MockEngines (profile h100-llama3-8b, `--mock-time-scale {o.TimeScale.ToString(Inv)}`), one EngineSidecar each, the ControlPlane (local home) and the Gateway, " +
            $"each its own process on {Environment.ProcessorCount} shared cores, over HTTP on 127.0.0.1; requests are OpenAI streaming completions through the gateway. " +
            $"Virtual seconds = wall seconds × {o.TimeScale.ToString(Inv)}. Wall clock: {WallSeconds:0} s in all ({StartupSeconds:0} s of it starting a fresh stack per run, placing adapters and warming up); " +
            $"1-minute load average at the start {LoadAverage}.").AppendLine();
        md.AppendLine("```").AppendLine(Command).AppendLine("```").AppendLine();

        md.AppendLine($"**Tolerance:** live and simulated TTFT agree when they differ by at most {o.Tolerance * 100:0.#} % of the simulated value or {o.ToleranceFloor.ToString(Inv)} virtual s, whichever is larger. " +
            "Rankings are compared on decisive pairs: two policies whose simulated figures differ by more than that tolerance must come in the same order live; closer pairs are ties.").AppendLine();
        md.AppendLine("## TTFT (virtual seconds), live vs simulated").AppendLine();
        md.AppendLine("| policy | rate (req/s) | measured requests | live P50 / P99 | simulated P50 / P99 | live ÷ sim P50 | live ÷ sim P99 | P50 within | P99 within |");
        md.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var c in Cells)
            md.AppendLine($"| {c.Policy} | {c.Rate.ToString(Inv)} | {c.Live.Measured} ({c.Live.Completed} done) | {S(c.Live.P50)} / {S(c.Live.P99)} | {S(c.Simulated.P50)} / {S(c.Simulated.P99)} | " +
                $"{Ratio(c.Live.P50, c.Simulated.P50)} | {Ratio(c.Live.P99, c.Simulated.P99)} | {Yes(Agreement.Within(c.Live.P50, c.Simulated.P50))} | {Yes(Agreement.Within(c.Live.P99, c.Simulated.P99))} |");
        md.AppendLine();

        md.AppendLine("## Ranking of the policies (best first)").AppendLine();
        md.AppendLine("| figure | rate (req/s) | simulator | live | decisive pairs in the same order |");
        md.AppendLine("|---|---|---|---|---|");
        foreach (var r in Rankings)
            md.AppendLine($"| {r.Figure} | {r.Rate.ToString(Inv)} | {string.Join(" < ", r.Simulated)} | {string.Join(" < ", r.Live)} | {r.DecisivePairs - r.Disagreements.Count} of {r.DecisivePairs}{(r.Agrees ? "" : " ✗")} |");
        md.AppendLine();
        var disagreements = Rankings.SelectMany(r => r.Disagreements.Select(d => $"- {r.Figure} at {r.Rate.ToString(Inv)} req/s: {d}")).ToList();
        if (disagreements.Count > 0) md.AppendLine("Disagreeing pairs:").AppendLine().AppendLine(string.Join("\n", disagreements)).AppendLine();

        md.AppendLine("## Verdict").AppendLine();
        foreach (var line in Verdict()) md.AppendLine($"- {line}");
        md.AppendLine();

        md.AppendLine("## Live run health").AppendLine();
        md.AppendLine("P99 TPOT shows whether the live engines keep model time (the simulator's figure is what the model charges). " +
            "Send lag = how late the client sent a request against the trace; errors = non-200 answers (counted as TTFT = ∞). " +
            "Mean TTFT is live only (the simulator reports percentiles). Virtual seconds throughout.").AppendLine();
        md.AppendLine("| policy | rate (req/s) | P99 TPOT live / sim | send lag P99 | errors | mean TTFT | requests per engine | wall (s) |");
        md.AppendLine("|---|---|---|---|---|---|---|---|");
        foreach (var c in Cells)
            md.AppendLine($"| {c.Policy} | {c.Rate.ToString(Inv)} | {Agreement.Milliseconds(c.Live.TpotP99)} / {Agreement.Milliseconds(c.Simulated.TpotP99)} | " +
                $"{S(c.Health.SendLagP99)} | {c.Health.Errors} | {S(c.Health.MeanTtft)} | " +
                $"{string.Join(", ", c.Health.RequestsByEngine.Select(kv => $"{kv.Key}: {kv.Value}"))} | {c.WallSeconds:0} |");
        md.AppendLine();
        md.AppendLine("Machine-readable: [`results.json`](results.json).");
        return md.ToString();
    }

    public IEnumerable<string> Verdict()
    {
        var n = Cells.Count;
        yield return $"TTFT within tolerance: P99 in {CellsWithin(f => f.P99)} of {n} policy × rate cells, P50 in {CellsWithin(f => f.P50)} of {n}.";
        foreach (var figure in Rankings.Select(r => r.Figure).Distinct())
        {
            var checks = Rankings.Where(r => r.Figure == figure).ToList();
            yield return $"Ranking by {figure}: agrees at {checks.Count(r => r.Agrees)} of {checks.Count} rates " +
                $"({checks.Sum(r => r.DecisivePairs - r.Disagreements.Count)} of {checks.Sum(r => r.DecisivePairs)} decisive pairs in the same order); " +
                $"identical order at {checks.Count(r => r.Simulated.SequenceEqual(r.Live))} of {checks.Count}.";
        }
    }

    public string Json()
    {
        var o = Options;
        var root = new JsonObject
        {
            ["command"] = Command,
            ["workload"] = Workload,
            ["timeScale"] = o.TimeScale,
            ["bytesPerRank"] = BytesPerRank,
            ["tolerance"] = new JsonObject { ["relative"] = o.Tolerance, ["floorSeconds"] = o.ToleranceFloor },
            ["wallSeconds"] = Math.Round(WallSeconds, 1),
            ["startupSeconds"] = Math.Round(StartupSeconds, 1),
            ["loadAverageAtStart"] = LoadAverage,
            ["cells"] = new JsonArray([.. Cells.Select(c => (JsonNode)new JsonObject
            {
                ["policy"] = c.Policy,
                ["rate"] = c.Rate,
                ["live"] = Figures(c.Live),
                ["simulated"] = Figures(c.Simulated),
                ["p50Within"] = Agreement.Within(c.Live.P50, c.Simulated.P50),
                ["p99Within"] = Agreement.Within(c.Live.P99, c.Simulated.P99),
                ["liveMeanTtft"] = Number(c.Health.MeanTtft),
                ["liveSendLagP99"] = Number(c.Health.SendLagP99),
                ["liveErrors"] = c.Health.Errors,
                ["liveRequestsByEngine"] = new JsonObject(c.Health.RequestsByEngine.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
                ["wallSeconds"] = Math.Round(c.WallSeconds, 1),
            })]),
            ["rankings"] = new JsonArray([.. Rankings.Select(r => (JsonNode)new JsonObject
            {
                ["figure"] = r.Figure,
                ["rate"] = r.Rate,
                ["simulated"] = new JsonArray([.. r.Simulated.Select(p => (JsonNode)p)]),
                ["live"] = new JsonArray([.. r.Live.Select(p => (JsonNode)p)]),
                ["decisivePairs"] = r.DecisivePairs,
                ["disagreements"] = new JsonArray([.. r.Disagreements.Select(d => (JsonNode)d)]),
                ["agrees"] = r.Agrees,
            })]),
            ["verdict"] = new JsonArray([.. Verdict().Select(v => (JsonNode)v)]),
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }

    private static JsonObject Figures(RunFigures f) => new()
    {
        ["measured"] = f.Measured,
        ["completed"] = f.Completed,
        ["ttftP50"] = Number(f.P50),
        ["ttftP99"] = Number(f.P99),
        ["tpotP99"] = Number(f.TpotP99),
    };

    /// <summary>JSON has no infinity: an unanswered percentile is written as null.</summary>
    private static JsonNode? Number(double x) => double.IsFinite(x) ? Math.Round(x, 4) : null;

    private static string S(double x) => Agreement.Show(x);
    private static string Yes(bool b) => b ? "yes" : "**no**";

    private static string Ratio(double live, double sim) =>
        double.IsFinite(live) && double.IsFinite(sim) && sim > 0 ? (live / sim).ToString("0.00", Inv) + "×" : "—";
}
