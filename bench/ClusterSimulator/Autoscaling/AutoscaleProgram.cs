using HybridServing.ClusterSimulator.Configuration;

namespace HybridServing.ClusterSimulator.Autoscaling;

/// <summary><c>dotnet run -c Release --project bench/ClusterSimulator -- autoscale [options]</c>.</summary>
internal static class AutoscaleProgram
{
    public static int Run(string[] args, bool record)
    {
        AutoscaleOptions? options;
        try
        {
            options = AutoscaleCommandLine.Parse(args);
            if (options is not null && record && !args.Any(a => a == "--out" || a.StartsWith("--out=", StringComparison.Ordinal)))
                options = options with { Cluster = options.Cluster with { Output = Path.Combine(HybridServing.Bench.Shared.BenchRun.ResultsRoot("", record), "autoscale") } };
        }
        catch (OptionException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
        if (options is null)
        {
            Console.WriteLine(AutoscaleCommandLine.Help);
            return 0;
        }
        var command = "dotnet run -c Release --project bench/ClusterSimulator -- " + string.Join(" ", ["autoscale", .. args]);
        Console.WriteLine($"Autoscaling: {options.Describe()}");
        var outcome = AutoscaleExperiment.Run(options, Console.Out);
        AutoscaleExperiment.Write(outcome, command);
        var wall = HybridServing.Bench.Shared.BenchRun.WallTime();
        File.AppendAllText(Path.Combine(options.Cluster.Output, "results.md"), $"\n{wall}.\n");
        Console.WriteLine();
        Console.WriteLine(AutoscaleExperiment.Markdown(outcome, command));
        Console.WriteLine(wall);
        Console.WriteLine($"Wrote results.md, results.json and engines-over-time.png to {Path.GetFullPath(options.Cluster.Output)} in {outcome.WallSeconds:0} s.");
        return 0;
    }
}
