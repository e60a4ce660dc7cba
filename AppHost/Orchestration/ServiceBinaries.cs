using System.Reflection;

namespace HybridServing.AppHost.Orchestration;

/// <summary>Finds the built service assemblies next to the AppHost's own build.</summary>
internal static class ServiceBinaries
{
    public const string SolutionFile = "HybridServing.sln";

    /// <summary>The repository root: the first folder above the AppHost's binaries holding the solution.</summary>
    public static string FindRepositoryRoot(string? start = null)
    {
        for (var dir = new DirectoryInfo(start ?? AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, SolutionFile))) return dir.FullName;
        }
        throw new InvalidOperationException($"Cannot find {SolutionFile} above {start ?? AppContext.BaseDirectory}; run the AppHost from the repository.");
    }

    /// <summary>
    /// The service's dll built with the same configuration as the AppHost. The AppHost's project
    /// references guarantee it was built by <c>dotnet run --project AppHost</c>.
    /// </summary>
    public static string Locate(string repositoryRoot, string project)
    {
        var configuration = typeof(ServiceBinaries).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
        var dll = Path.Combine(repositoryRoot, project, "bin", configuration, "net10.0", $"HybridServing.{project}.dll");
        if (!File.Exists(dll))
            throw new FileNotFoundException($"{project} is not built ({dll} is missing). Run 'dotnet build HybridServing.sln' or 'dotnet run --project AppHost'.", dll);
        return dll;
    }
}
