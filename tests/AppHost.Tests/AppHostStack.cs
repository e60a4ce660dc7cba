namespace HybridServing.AppHost.Tests;

/// <summary>Tests that start the whole stack run one at a time: each is a dozen processes on a two-core machine.</summary>
[CollectionDefinition(Name)]
public sealed class AppHostStack
{
    public const string Name = "AppHost stack";
}
