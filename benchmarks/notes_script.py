"""The lecture notes' MNIST script, as a learner runs it: a whole process, imports included.

The code is the notes' (batch 64, ToTensor + Normalize per image through a DataLoader, the
784-512-256-128-64-10 MLP, SGD(lr=0.01, momentum=0.5), train() then test() per epoch),
with three changes for timing: the data root is an argument (no download), the seed is
set, and it stops once the test accuracy reaches --target (the notes run 100 epochs).
Used by `time_to_accuracy.py --mode end-to-end`.

    python benchmarks/notes_script.py DATA_ROOT [--target 98] [--max-epochs 25]
"""

import argparse

import torch
import torch.optim as optim
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

parser = argparse.ArgumentParser()
parser.add_argument("root", help="folder holding MNIST/raw/")
parser.add_argument("--target", type=float, default=98.0, help="stop at this test accuracy (%%)")
parser.add_argument("--max-epochs", type=int, default=25)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
torch.manual_seed(args.seed)

batch_size = 64
transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
train_dataset = datasets.MNIST(root=args.root, train=True, transform=transform)
test_dataset = datasets.MNIST(root=args.root, train=False, transform=transform)
train_dataloader = DataLoader(dataset=train_dataset, batch_size=batch_size, shuffle=True)
test_dataloader = DataLoader(dataset=test_dataset, batch_size=batch_size, shuffle=True)


class MNIST_Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = torch.nn.Linear(784, 512)
        self.l2 = torch.nn.Linear(512, 256)
        self.l3 = torch.nn.Linear(256, 128)
        self.l4 = torch.nn.Linear(128, 64)
        self.l5 = torch.nn.Linear(64, 10)
        self.activate = torch.nn.ReLU()

    def forward(self, x):
        x = x.view(-1, 784)
        x = self.activate(self.l1(x))
        x = self.activate(self.l2(x))
        x = self.activate(self.l3(x))
        x = self.activate(self.l4(x))
        return self.l5(x)


model = MNIST_Model()
criterion = torch.nn.CrossEntropyLoss()
optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.5)


def train(epoch):
    running_loss = 0.0
    for batch_id, data in enumerate(train_dataloader, 0):
        inputs, targets = data
        y_pred = model(inputs)
        loss = criterion(y_pred, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
        if batch_id % 300 == 299:
            print(f"[epoch: {epoch + 1},batch_id:{batch_id + 1}] loss: {running_loss / 300: .4f}")
            running_loss = 0.0


def test():
    correct = 0
    total = 0
    with torch.no_grad():
        for data in test_dataloader:
            inputs, targets = data
            outputs = model(inputs)
            _, predicted = torch.max(outputs.data, dim=1)
            total += targets.size(0)
            correct += (predicted == targets).sum().item()
    print(f"Accuracy on test set:{100 * correct / total}%", flush=True)
    return 100 * correct / total


for epoch in range(args.max_epochs):
    train(epoch=epoch)
    if test() >= args.target:
        break
