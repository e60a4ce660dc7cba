using HybridServing.ClusterSimulator.Configuration;

namespace HybridServing.ClusterSimulator.Autoscaling;

/// <summary><c>dotnet run -c Release --project bench/ClusterSimulator -- autoscale [options]</c>.</summary>
internal static class AutoscaleProgram
{
    public static int Run(string[] args)
    {
        AutoscaleOptions? options;
        try
        {
            options = AutoscaleCommandLine.Parse(args);
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
        Console.WriteLine();
        Console.WriteLine(AutoscaleExperiment.Markdown(outcome, command));
        Console.WriteLine($"Wrote results.md, results.json and engines-over-time.png to {Path.GetFullPath(options.Cluster.Output)} in {outcome.WallSeconds:0} s.");
        return 0;
    }
}
