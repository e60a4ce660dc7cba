using HybridServing.Contracts.Paths;

namespace HybridServing.EngineSidecar.Artifacts;

/// <summary>The sidecar's local adapter paths, confined to <c>Sidecar:AllowedLocalRoots</c> (<see cref="LocalRoots"/>).</summary>
internal sealed class LocalPathPolicy(IEnumerable<string> roots)
{
    public const string Option = "Sidecar:AllowedLocalRoots";
    private readonly LocalRoots _roots = new(roots, Option);

    public IReadOnlyList<string> Roots => _roots.Roots;

    /// <summary>Returns the canonical, symlink-free path, or throws <see cref="ArtifactException"/> with PathNotAllowed.</summary>
    public string Confine(string path)
    {
        string? real, problem;
        try
        {
            real = _roots.Confine(path, out problem);
        }
        catch (IOException e)
        {
            throw new ArtifactException(FailureReasons.PathNotAllowed, e.Message, e);
        }
        return real ?? throw new ArtifactException(FailureReasons.PathNotAllowed, problem!);
    }
}
