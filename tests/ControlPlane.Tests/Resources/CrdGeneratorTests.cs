using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Resources;
using k8s;
using k8s.Models;

namespace HybridServing.ControlPlane.Tests.Resources;

public sealed class CrdGeneratorTests
{
    private static string CommittedPath =>
        Path.Combine(CrdGenerator.FindRepositoryRoot(AppContext.BaseDirectory) ?? throw new InvalidOperationException("repository root not found"),
            "k8s", "crds", CrdGenerator.FileName);

    [Fact]
    public void Committed_CRD_matches_the_generator()
    {
        Assert.True(File.Exists(CommittedPath), $"{CommittedPath} is missing: run `dotnet run --project ControlPlane -- generate-crd k8s/crds`.");
        var committed = File.ReadAllText(CommittedPath).ReplaceLineEndings("\n");
        Assert.True(committed == CrdGenerator.GenerateYaml(),
            $"{CommittedPath} differs from what the C# type generates: run `dotnet run --project ControlPlane -- generate-crd k8s/crds` and commit the result.");
    }

    [Fact]
    public void Generated_CRD_is_a_valid_object_with_the_essentials()
    {
        var crd = KubernetesYaml.Deserialize<V1CustomResourceDefinition>(CrdGenerator.GenerateYaml());
        Assert.Equal("loraadapters.hybridserving.io", crd.Metadata.Name);
        Assert.Equal(["lora"], crd.Spec.Names.ShortNames);
        var version = Assert.Single(crd.Spec.Versions);
        Assert.NotNull(version.Subresources.Status);
        Assert.Contains(version.AdditionalPrinterColumns, c => c.Name == "Phase" && c.JsonPath == ".status.phase");
        var spec = version.Schema.OpenAPIV3Schema.Properties["spec"];
        Assert.Equal(["baseModel", "adapterSource"], spec.Required);
        Assert.Equal(["huggingface", "s3", "local", "http"], spec.Properties["adapterSource"].Properties["type"].EnumProperty.Select(e => e.ToString()));
        Assert.Equal(0d, spec.Properties["schedulingConfig"].Properties["priority"].Minimum);
        Assert.NotEmpty(spec.Properties["deploymentConfig"].Properties["replicas"].XKubernetesValidations);
    }

    [Fact]
    public void Command_writes_the_file_into_the_given_folder()
    {
        using var dir = new HybridServing.TestKit.TempDirectory("crd");
        Assert.Equal(0, CrdGenerator.RunCommand([dir.Path]));
        Assert.Equal(CrdGenerator.GenerateYaml(), File.ReadAllText(dir.Combine(CrdGenerator.FileName)));
        Assert.Equal(2, CrdGenerator.RunCommand(["a", "b"]));
    }
}
