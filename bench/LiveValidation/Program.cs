using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using HybridServing.Bench.Hosting;
using HybridServing.ClusterSimulator.Cluster;
using OptionException = HybridServing.ClusterSimulator.Configuration.OptionException;
using HybridServing.ClusterSimulator.Workload;
using HybridServing.LiveValidation.Comparison;
using HybridServing.LiveValidation.Configuration;
using HybridServing.LiveValidation.Live;
using HybridServing.LiveValidation.Reporting;
using HybridServing.LiveValidation.Workload;

// The same seeded workload through the live stack (real processes, real HTTP,
// compressed time) and through the cluster simulator; TTFT and the policies' ranking compared.
var record = HybridServing.Bench.Shared.BenchRun.TakeRecord(ref args);
ValidationOptions? options;
try
{
    options = CommandLine.Parse(args);
    // Results go to the ignored bench/results/local/ unless --record (or --out) says otherwise.
    if (options is not null && record && !args.Any(a => a == "--out" || a.StartsWith("--out=", StringComparison.Ordinal)))
        options = options with { Output = Path.Combine(HybridServing.Bench.Shared.BenchRun.ResultsRoot("", record), "live-validation") };
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

using var stopping = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; stopping.Cancel(); };
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stopping.Cancel(); });
var wall = Stopwatch.StartNew();
void Log(string line) => Console.WriteLine($"[{wall.Elapsed.TotalSeconds,5:0}s] {line}");

// Other work on the machine skews a live run: the 1-minute load average at the start goes in the report
// (at the end it mostly counts the run's own processes).
static string LoadAverage() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "n/a";
var loadBefore = LoadAverage();
var command = "dotnet run -c Release --project bench/LiveValidation" + (args.Length == 0 ? "" : " -- " + string.Join(" ", args));
var workload = new SharedWorkload(options);
Log($"live validation: {options.Describe()}");
var adapterRoot = Path.Combine(Path.GetFullPath(options.WorkDirectory), $"adapters-seed{options.Seed}-n{options.Adapters}");
workload.WriteAdapters(adapterRoot, Log);
var traces = options.Rates.ToDictionary(r => r, workload.Trace);

var simulated = new ConcurrentDictionary<(string Policy, double Rate), RunResult>();
var jobs = options.Policies.SelectMany(p => options.Rates.Select(r => (Policy: p, Rate: r))).ToList();
Parallel.ForEach(jobs, job =>
    simulated[job] = ClusterRun.Execute(workload.Simulation, workload.Catalog, traces[job.Rate], job.Policy, stopWhenSloLost: false));
Log($"simulator: {jobs.Count} runs done");

var cells = new List<Cell>();
var names = workload.Catalog.Adapters.Select(a => a.Name).ToList();
var maxLoraRank = Math.Max(16, workload.Catalog.Adapters.Max(a => a.Rank));
var startup = TimeSpan.Zero;
// Wall-clock warm-up on the base model before each measured trace (see Replayer.WarmUpAsync).
var warmUp = TimeSpan.FromSeconds(5);
try
{
    foreach (var policy in options.Policies)
    {
        var setup = LivePolicy.For(policy, options, workload.Catalog, adapterRoot);
        foreach (var rate in options.Rates)
        {
            // A fresh stack per run, as every simulated run starts from a fresh cluster.
            var starting = Stopwatch.StartNew();
            await using var stack = await StartStackAsync(setup);
            var placed = await stack.WaitPlacedAsync(setup, names, TimeSpan.FromMinutes(3), stopping.Token);
            File.WriteAllText(Path.Combine(options.WorkDirectory, $"placement-{policy}-{rate}-start.txt"), LiveStack.Describe(placed));
            var watch = stack.WatchAsync(stopping.Token);
            using var http = Replayer.CreateClient(stack.Gateway);
            await Replayer.WarmUpAsync(http, AdapterCatalog.BaseModel, rate * options.TimeScale, warmUp, stopping.Token);
            startup += starting.Elapsed;

            var run = Stopwatch.StartNew();
            var requests = await Replayer.RunAsync(http, traces[rate], workload.Catalog, options, stopping.Token);
            // A component that died during the run voids it: say which and why.
            if (watch.IsCompleted) await watch;
            Replayer.WriteCsv(Path.Combine(options.WorkDirectory, $"requests-{policy}-{rate}.csv"), requests, workload.Catalog);
            File.WriteAllText(Path.Combine(options.WorkDirectory, $"placement-{policy}-{rate}-end.txt"), LiveStack.Describe(await stack.RoutesAsync(stopping.Token)));
            var overflow = OverflowFigures.Parse(await stack.GatewayMetricsAsync(stopping.Token));
            var (live, health) = Agreement.Live(requests);
            var sim = Agreement.Simulated(simulated[(policy, rate)]);
            cells.Add(new Cell(policy, rate, live, sim, health, run.Elapsed.TotalSeconds));
            Log($"{policy,-14} rate {rate,6}: live P50/P99 TTFT {Agreement.Show(live.P50)}/{Agreement.Show(live.P99)} s, " +
                $"simulated {Agreement.Show(sim.P50)}/{Agreement.Show(sim.P99)} s ({live.Completed} of {live.Measured} measured done, " +
                $"P99 TPOT live {Agreement.Milliseconds(live.TpotP99)} vs {Agreement.Milliseconds(sim.TpotP99)}, {health.Errors} errors, " +
                $"send lag P99 {Agreement.Show(health.SendLagP99)} s; {starting.Elapsed.TotalSeconds - run.Elapsed.TotalSeconds:0} s to start, place and warm up, {run.Elapsed.TotalSeconds:0} s measured; {overflow.Describe()})");
        }
    }
}
catch (StackFailedException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    foreach (var line in e.RecentOutput) Console.Error.WriteLine($"  {e.Resource} | {line}");
    return 1;
}
catch (Exception e) when (e is TimeoutException or FileNotFoundException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}
catch (OperationCanceledException) when (stopping.IsCancellationRequested)
{
    Console.Error.WriteLine("stopped");
    return 1;
}

// Other programs on a shared machine can take a port between the check and the bind: try again on other ports.
async Task<LiveStack> StartStackAsync(LivePolicy setup)
{
    for (var attempt = 1; ; attempt++)
    {
        try
        {
            return await LiveStack.StartAsync(options, setup, maxLoraRank, adapterRoot, Path.GetFullPath(options.WorkDirectory), stopping.Token);
        }
        catch (StackFailedException e) when (attempt < 3 && e.RecentOutput.Any(l => l.Contains("address already in use", StringComparison.OrdinalIgnoreCase)))
        {
            Log($"{setup.Name}: {e.Resource} could not bind its port; starting the stack again on other ports");
        }
    }
}

var agreement = new Agreement(options.Tolerance, options.ToleranceFloor);
var rankings = new List<RankingCheck>();
foreach (var (figure, value) in new (string, Func<RunFigures, double>)[] { ("P99 TTFT", f => f.P99), ("P50 TTFT", f => f.P50) })
    foreach (var rate in options.Rates)
        rankings.Add(agreement.Rank(figure, rate, [.. cells.Where(c => c.Rate == rate)], value));

var report = new ValidationReport(options, command, workload.Simulation.Describe(), workload.BytesPerRank, cells, rankings, agreement,
    startup.TotalSeconds, wall.Elapsed.TotalSeconds, loadBefore);
Directory.CreateDirectory(options.Output);
var markdown = report.Markdown() + $"\n{HybridServing.Bench.Shared.BenchRun.WallTime()}.\n";
File.WriteAllText(Path.Combine(options.Output, "results.md"), markdown);
File.WriteAllText(Path.Combine(options.Output, "results.json"), report.Json());
Console.WriteLine();
Console.WriteLine(markdown);
Log($"wrote results.md and results.json to {Path.GetFullPath(options.Output)}");
return 0;
