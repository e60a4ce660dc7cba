namespace HybridServing.AppHost.Tests;

internal static class Repository
{
    /// <summary>The repository root: the first folder above the test binaries holding the solution.</summary>
    public static string Root { get; } = Find();

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "HybridServing.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException($"No HybridServing.sln above {AppContext.BaseDirectory}.");
    }
}
