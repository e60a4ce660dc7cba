using HybridServing.EngineSidecar.Artifacts;
using HybridServing.EngineSidecar.Configuration;
using HybridServing.EngineSidecar.Reconciliation;
using HybridServing.EngineSidecar.RolloutFile;
using HybridServing.TestKit;

namespace HybridServing.EngineSidecar.Tests.Artifacts;

public sealed class LocalPathPolicyTests
{
    [Fact]
    public void Paths_inside_a_root_pass_and_resolve_symlinks_inside()
    {
        using var dir = new TempDirectory("lp");
        var root = Directory.CreateDirectory(dir.Combine("root")).FullName;
        var a = TestAdapters.Write(root, "a");
        Directory.CreateSymbolicLink(Path.Combine(root, "alias"), a);
        var policy = new LocalPathPolicy([root]);
        Assert.Equal(a, policy.Confine(a));
        Assert.Equal(a, policy.Confine(Path.Combine(root, "alias")));
    }

    [Fact]
    public void Escapes_are_refused()
    {
        using var dir = new TempDirectory("lp2");
        var root = Directory.CreateDirectory(dir.Combine("root")).FullName;
        var outside = TestAdapters.Write(dir.Combine("other"), "o");
        Directory.CreateSymbolicLink(Path.Combine(root, "out"), dir.Combine("other"));
        var policy = new LocalPathPolicy([root]);
        Assert.Contains("'..' segments", Assert.Throws<ArtifactException>(() => policy.Confine(root + "/../other/o")).Message);
        Assert.Contains("confined to", Assert.Throws<ArtifactException>(() => policy.Confine(outside)).Message);
        Assert.Contains("confined to", Assert.Throws<ArtifactException>(() => policy.Confine(root + "-sibling/x")).Message);
        Assert.Contains("symlink", Assert.Throws<ArtifactException>(() => policy.Confine(Path.Combine(root, "out", "o"))).Message);
        var none = Assert.Throws<ArtifactException>(() => new LocalPathPolicy([]).Confine(outside)).Message;
        Assert.Contains("no Sidecar:AllowedLocalRoots", none);
        Assert.Contains($"Allow it with Sidecar:AllowedLocalRoots:N={Path.GetDirectoryName(outside)} (environment Sidecar__AllowedLocalRoots__N)", none);
        Assert.Contains("Allow it with Sidecar:AllowedLocalRoots:N=", Assert.Throws<ArtifactException>(() => policy.Confine(outside)).Message);
    }
}
