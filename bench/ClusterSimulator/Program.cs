using HybridServing.ClusterSimulator.Autoscaling;
using HybridServing.ClusterSimulator.Configuration;
using HybridServing.ClusterSimulator.Experiments;
using HybridServing.ClusterSimulator.Reporting;
using HybridServing.Bench.Shared;

// The routing/placement benchmark (docs/benchmarks.md §1): every policy on the same seeded workload,
// in virtual time; writes results.md, results.json and the charts to --out. `autoscale` runs the
// Autoscaler experiment instead (Autoscaling/).
var record = BenchRun.TakeRecord(ref args);
if (args.Length > 0 && args[0] == AutoscaleCommandLine.Command) return AutoscaleProgram.Run(args[1..], record);
SimulationOptions? options;
try
{
    options = CommandLine.Parse(args);
    // Results go to the ignored bench/results/local/ unless --record (or --out) says otherwise.
    if (options is not null && record && !args.Any(a => a == "--out" || a.StartsWith("--out=", StringComparison.Ordinal)))
        options = options with { Output = Path.Combine(BenchRun.ResultsRoot("", record), "cluster-sim") };
}
catch (OptionException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
if (options is null)
{
    Console.WriteLine(CommandLine.Help);
    return 0;
}

var command = "dotnet run -c Release --project bench/ClusterSimulator" + (args.Length == 0 ? "" : " -- " + string.Join(" ", args));
Console.WriteLine($"Cluster simulator: {options.Describe()}");
Console.WriteLine($"Policies: {string.Join(", ", options.Policies)}; scenarios: {string.Join(", ", options.Scenarios)}; parallelism {options.Parallelism}");
var outcome = new ExperimentRunner(options, Console.Out).Run();

Directory.CreateDirectory(options.Output);
var markdown = MarkdownReport.Render(outcome, command) + $"\n{BenchRun.WallTime()}.\n";
File.WriteAllText(Path.Combine(options.Output, "results.md"), markdown);
File.WriteAllText(Path.Combine(options.Output, "results.json"), JsonReport.Render(outcome, command));
Charts.P99TtftVsRate(outcome, Path.Combine(options.Output, "p99-ttft-vs-rate.png"));
Charts.LoadsByTier(outcome, Path.Combine(options.Output, "loads-by-tier.png"));
Console.WriteLine();
Console.WriteLine(markdown);
Console.WriteLine($"Wrote results.md, results.json and charts to {Path.GetFullPath(options.Output)} in {outcome.WallSeconds:0} s.");
return 0;
