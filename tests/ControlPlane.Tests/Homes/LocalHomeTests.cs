using HybridServing.ControlPlane.Homes;
using HybridServing.ControlPlane.Tests.Infrastructure;
using HybridServing.TestKit;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace HybridServing.ControlPlane.Tests.Homes;

public sealed class LocalHomeTests : IDisposable
{
    private readonly TempDirectory _dir = new("home");

    public void Dispose() => _dir.Dispose();

    private LocalHome Home(string? path, FakeTimeProvider? clock = null) => new(
        Options.Create(new ControlPlaneOptions
        {
            ManifestsPath = path,
            Engines = [new EngineOptions { Name = "e0", SidecarUrl = "http://127.0.0.1:1", Labels = { ["pool"] = "a" } }],
        }),
        clock ?? new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z")), new LoraAdapterStore(), NullLogger<LocalHome>.Instance);

    [Fact]
    public void Missing_or_unset_folder_is_a_problem_not_a_crash()
    {
        var unset = Home(null);
        unset.Rescan();
        Assert.Contains("ControlPlane:ManifestsPath is not set", Assert.Single(unset.Current.Problems).Message);
        var missing = Home(_dir.Combine("nope"));
        missing.Rescan();
        Assert.Contains("does not exist", Assert.Single(missing.Current.Problems).Message);
        Assert.True(missing.Synced);
        Assert.Equal("e0", Assert.Single(missing.Current.Engines).Name);
    }

    [Fact]
    public void Reads_yaml_and_yml_with_several_documents_and_resolves_relative_repositories_from_the_file()
    {
        Manifests.Write(_dir.Path, "a.yaml", Manifests.Adapter("one", "./x") + "\n---\n" + Manifests.Adapter("two", "./x", ns: "team"));
        Manifests.Write(_dir.Path, "b.yml", Manifests.Adapter("three", "./x"));
        Manifests.Write(_dir.Path, "notes.txt", "not yaml at all: [");
        var home = Home(_dir.Path);
        home.Rescan();
        Assert.Equal(["default/one", "team/two", "default/three"], home.Current.Adapters.Select(a => a.Key));
        Assert.All(home.Current.Adapters, a => Assert.Equal(_dir.Path, a.BaseDirectory));
        Assert.Empty(home.Current.Problems);
    }

    [Fact]
    public void Same_object_in_two_files_keeps_the_first_and_reports_the_second()
    {
        Manifests.Write(_dir.Path, "a.yaml", Manifests.Adapter("one", "./x"));
        Manifests.Write(_dir.Path, "b.yaml", Manifests.Adapter("one", "./y"));
        var home = Home(_dir.Path);
        home.Rescan();
        Assert.Equal("./x", Assert.Single(home.Current.Adapters).Resource.Spec.AdapterSource.Repository);
        Assert.Contains("already declared in a.yaml", Assert.Single(home.Current.Problems).Message);
    }

    [Fact]
    public void Generation_moves_with_the_spec_and_identity_is_stable()
    {
        var path = Manifests.Write(_dir.Path, "a.yaml", Manifests.Adapter("one", "./x"));
        var home = Home(_dir.Path);
        var changes = 0;
        home.Changed += () => changes++;
        home.Rescan();
        var first = Assert.Single(home.Current.Adapters).Resource.Metadata;
        Assert.Equal(1, first.Generation);

        home.Rescan(); // nothing changed
        Assert.Equal(1, changes);

        File.WriteAllText(path, Manifests.Adapter("one", "./x") + "# a comment only\n");
        home.Rescan();
        Assert.Equal(1, Assert.Single(home.Current.Adapters).Resource.Metadata.Generation);

        File.WriteAllText(path, Manifests.Adapter("one", "./y"));
        home.Rescan();
        var second = Assert.Single(home.Current.Adapters).Resource.Metadata;
        Assert.Equal(2, second.Generation);
        Assert.Equal(first.Uid, second.Uid);
        Assert.Equal(first.CreationTimestamp, second.CreationTimestamp);
        Assert.Equal(2, changes);
    }

    [Fact]
    public void A_broken_file_is_reported_alone()
    {
        Manifests.Write(_dir.Path, "good.yaml", Manifests.Adapter("one", "./x"));
        Manifests.Write(_dir.Path, "bad.yaml", "kind: LoraAdapter\n  bad: indentation\n");
        var home = Home(_dir.Path);
        home.Rescan();
        Assert.Equal("default/one", Assert.Single(home.Current.Adapters).Key);
        Assert.Contains("bad.yaml", Assert.Single(home.Current.Problems).Message);
    }
}
